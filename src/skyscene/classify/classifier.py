"""The real/bogus classifier: a scikit-learn-style estimator around a torch network.

``RealBogusClassifier(**params).fit(X, y, groups=groups)`` trains a network of
:mod:`skyscene.classify.models` on cutout triplets ``X`` (N, 3, size, size) with labels
``y`` (1 real, 0 bogus): class-balanced binary cross-entropy, random flips and quarter
turns, AdamW, early stopping on the validation AUCPR (validation rows split off *by
group*), then temperature scaling and the threshold for a target false-negative rate
on the validation set. Seeded and deterministic on the CPU (same seed, same threads:
the same weights bit for bit).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyscene._estimator import EstimatorParams
from skyscene._validation import (
    check_choice,
    check_int,
    check_odd,
    check_optional,
    check_positive,
    check_range,
)
from skyscene.classify.calibration import fit_temperature, sigmoid
from skyscene.classify.metrics import (
    ClassificationReport,
    average_precision,
    classification_report,
    threshold_for_fnr,
)
from skyscene.classify.models import (
    ARCHITECTURES,
    INPUTS,
    as_tensor,
    build_model,
    normalise_triplets,
)
from skyscene.classify.split import group_split
from skyscene.errors import DataError, ParameterError

__all__ = ["RealBogusClassifier", "ScoreResult", "TrainConfig", "data_hash"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of :class:`RealBogusClassifier` (validated, frozen; ``to_dict()``).

    Parameters
    ----------
    arch : {"vgg6", "resnet", "compact"}
        Network (:func:`skyscene.classify.models.build_model`).
    size : int
        Cutout side (odd), pixels.
    inputs : {"braai", "snr"}
        Network input (:data:`skyscene.classify.models.INPUTS`): ``braai`` the three
        L2-normalised cutouts; ``snr`` those plus the cutouts in noise units (6 channels).
    epochs : int
        Largest number of passes over the training rows.
    batch_size : int
    learning_rate, weight_decay : float
        AdamW settings.
    patience : int
        Stop after this many epochs without a better validation AUCPR (the best epoch's
        weights are kept).
    validation_fraction : float
        Fraction of the rows (whole groups) held out for early stopping, calibration and
        the threshold, when ``fit`` gets no ``validation``.
    augment : bool
        Random element of the 8 flips/rotations per training triplet.
    class_weight : {"balanced", "none"}
        ``balanced``: each class weighs half of the loss.
    calibrate : bool
        Fit the temperature on validation (else ``T = 1``).
    target_fnr : float
        False-negative rate on validation at the stored threshold (ZTF's permissive 1 %).
    dropout : float
        Dropout before the output layer.
    tta : bool
        ``resnet`` only: average the 8 flips/rotations at inference.
    blur : float
        Difference-image augmentation: when > 0, half of the training triplets (drawn per
        batch) get their difference cutout convolved with a round Gaussian of σ
        U(0.3, ``blur``) pixels and L2-normalised again: correlated noise and a broader
        PSF in D, as a classic kernel-matched difference has them. 0 (default): off.
    seed : int
        Seeds torch (weights, dropout) and numpy (shuffling, augmentation, split).
    n_threads : int, optional
        ``torch.set_num_threads``; None: torch's default. Determinism holds for a fixed
        value.
    """

    arch: str = "vgg6"
    size: int = 63
    inputs: str = "braai"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    validation_fraction: float = 0.2
    augment: bool = True
    class_weight: str = "balanced"
    calibrate: bool = True
    target_fnr: float = 0.01
    dropout: float = 0.5
    tta: bool = True
    blur: float = 0.0
    seed: int = 0
    n_threads: int | None = None

    def __post_init__(self) -> None:
        n = "TrainConfig."
        check_choice(n + "arch", self.arch, ARCHITECTURES)
        check_odd(n + "size", self.size, low=23)
        check_choice(n + "inputs", self.inputs, tuple(INPUTS))
        check_int(n + "epochs", self.epochs, low=1)
        check_int(n + "batch_size", self.batch_size, low=1)
        check_positive(n + "learning_rate", self.learning_rate)
        check_positive(n + "weight_decay", self.weight_decay, allow_zero=True)
        check_int(n + "patience", self.patience, low=1)
        check_range(n + "validation_fraction", self.validation_fraction, low=0.01, high=0.9)
        check_choice(n + "augment", self.augment, (True, False))
        check_choice(n + "class_weight", self.class_weight, ("balanced", "none"))
        check_choice(n + "calibrate", self.calibrate, (True, False))
        check_range(n + "target_fnr", self.target_fnr, low=0, high=0.5)
        check_range(n + "dropout", self.dropout, low=0, high=0.95)
        check_choice(n + "tta", self.tta, (True, False))
        check_range(n + "blur", self.blur, low=0, high=5)
        check_int(n + "seed", self.seed, low=0)
        check_optional(check_int, n + "n_threads", self.n_threads, low=1)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (recorded in checkpoints)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    """Scores of a batch of triplets.

    Attributes
    ----------
    rb : ndarray of float64, (N,)
        Calibrated probability that the candidate is real.
    n_nan : ndarray of int, (N,)
        NaN pixels of each triplet, set to 0 before scoring (as braai).
    model_name, model_version : str
    """

    rb: np.ndarray
    n_nan: np.ndarray
    model_name: str
    model_version: str

    def to_table(self, *, index=None, index_name: str = "index"):
        """astropy Table with ``index`` (or ``candid``), ``rb``, ``model_version``, ``n_nan``."""
        from astropy.table import Table

        idx = np.arange(self.rb.size) if index is None else np.asarray(index)
        return Table(
            {
                index_name: idx,
                "rb": self.rb,
                "model_version": np.full(self.rb.size, self.model_version),
                "n_nan": self.n_nan,
            },
            meta={"model_name": self.model_name, "model_version": self.model_version},
        )


def data_hash(*arrays: np.ndarray) -> str:
    """SHA-256 (hex) of the arrays' dtypes, shapes and bytes: identifies a training set."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes() if a.dtype.kind != "U" else "\0".join(a.ravel()).encode())
    return h.hexdigest()


def _state_hash(state: dict, arch: str) -> str:
    h = hashlib.sha256(arch.encode())
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


class RealBogusClassifier(EstimatorParams):
    """Real/bogus CNN with the scikit-learn estimator contract.

    Parameters are those of :class:`TrainConfig` (``get_params``/``set_params`` work on
    them; ``config`` is the validated :class:`TrainConfig`).

    Attributes
    ----------
    Set by ``fit`` or :func:`skyscene.classify.io.load_model`.

    model_ : torch.nn.Module
        The network in eval mode; outputs logits.
    temperature_ : float
        Calibration temperature: ``rb = sigmoid(logit / temperature_)``.
    threshold_ : float
        ``rb >= threshold_`` is called real (FNR = ``target_fnr`` on validation).
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``val_aucpr``.
    best_epoch_ : int
    validation_report_ : ClassificationReport
        Calibrated figures on the validation rows at ``threshold_``.
    model_name_, model_version_ : str
        ``skyscene-rb-<arch>`` and the first 12 hex digits of the SHA-256 of the weights.
    data_hash_ : str
        SHA-256 of the training triplets and labels.
    classes_ : ndarray
        ``[0, 1]`` (bogus, real).

    Examples
    --------
    >>> clf = RealBogusClassifier(arch="vgg6", epochs=3, seed=1)
    >>> clf.get_params()["epochs"], clf.set_params(epochs=5).epochs
    (3, 5)
    """

    def __init__(
        self,
        *,
        arch: str = "vgg6",
        size: int = 63,
        inputs: str = "braai",
        epochs: int = 30,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        validation_fraction: float = 0.2,
        augment: bool = True,
        class_weight: str = "balanced",
        calibrate: bool = True,
        target_fnr: float = 0.01,
        dropout: float = 0.5,
        tta: bool = True,
        blur: float = 0.0,
        seed: int = 0,
        n_threads: int | None = None,
    ):
        self.arch = arch
        self.size = size
        self.inputs = inputs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.target_fnr = target_fnr
        self.dropout = dropout
        self.tta = tta
        self.blur = blur
        self.seed = seed
        self.n_threads = n_threads

    # set by fit() or skyscene.classify.io.load_model()
    metrics_: dict
    source_: str
    skyscene_version_: str

    @property
    def config(self) -> TrainConfig:
        """The parameters as a validated :class:`TrainConfig`."""
        return TrainConfig(**self.get_params())

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ParameterError(
                "this RealBogusClassifier is not fitted yet: call fit() or load_model()"
            )

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X,
        y,
        *,
        groups=None,
        validation: tuple[Any, Any] | None = None,
        progress_bar: bool = False,
    ) -> RealBogusClassifier:
        """Train on triplets ``X`` (N, 3, size, size) and labels ``y`` (1 real, 0 bogus).

        Parameters
        ----------
        X : ndarray, (N, 3, size, size)
            Raw cutouts (science, reference, difference); NaN allowed (set to 0).
        y : array of {0, 1}, (N,)
        groups : array, (N,), optional
            Simulated night/CCD of each row; validation rows are whole groups. Default:
            every row its own group.
        validation : (X_val, y_val), optional
            An explicit validation set instead of a split of ``X``.
        progress_bar : bool
            A tqdm bar over the epochs.

        Returns
        -------
        self
        """
        cfg = self.config
        from skyscene.classify._torch import deterministic

        t = deterministic(cfg.seed, cfg.n_threads)
        x_all = normalise_triplets(X, size=cfg.size).data
        y_all = np.asarray(y).astype(np.int64).ravel()
        if y_all.size != x_all.shape[0]:
            raise DataError(f"{x_all.shape[0]} triplets but {y_all.size} labels")
        if not np.isin(y_all, (0, 1)).all():
            raise DataError("labels must be 0 (bogus) or 1 (real)")
        if validation is None:
            g = np.arange(y_all.size) if groups is None else np.asarray(groups)
            if g.shape[0] != y_all.size:
                raise DataError(f"{g.shape[0]} groups but {y_all.size} labels")
            split = group_split(g, validation=cfg.validation_fraction, test=0.0, rng=cfg.seed)
            x_train, y_train = x_all[split.train], y_all[split.train]
            x_val, y_val = x_all[split.validation], y_all[split.validation]
        else:
            x_train, y_train = x_all, y_all
            x_val = normalise_triplets(validation[0], size=cfg.size, source="validation").data
            y_val = np.asarray(validation[1]).astype(np.int64).ravel()
        for name, labels in (("training", y_train), ("validation", y_val)):
            if labels.sum() == 0 or labels.sum() == labels.size:
                raise DataError(
                    f"the {name} rows need both real and bogus examples "
                    f"({int(labels.sum())} real of {labels.size})"
                )
        self.data_hash_ = data_hash(np.asarray(X, dtype=np.float32), y_all)
        model = build_model(cfg.arch, size=cfg.size, **self._model_kwargs(cfg))
        optimiser = t.optim.AdamW(
            model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        n_pos = int(y_train.sum())
        n_neg = int(y_train.size - n_pos)
        if cfg.class_weight == "balanced":
            w_class = np.array([y_train.size / (2 * n_neg), y_train.size / (2 * n_pos)])
        else:
            w_class = np.ones(2)
        rng = np.random.default_rng(cfg.seed)
        history: list[dict] = []
        best = (-np.inf, 0, copy.deepcopy(model.state_dict()))
        stale = 0
        epochs = range(1, cfg.epochs + 1)
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.epochs, desc=f"train {cfg.arch}", unit="epoch")
        for epoch in epochs:
            model.train()
            order = rng.permutation(y_train.size)
            total = 0.0
            for start in range(0, order.size, cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                xb = as_tensor(x_train[idx])
                if cfg.augment:
                    xb = _augment(t, xb, rng.integers(0, 8, idx.size))
                if cfg.blur > 0:
                    xb = _blur_difference(t, xb, rng, cfg.blur)
                yb = t.from_numpy(y_train[idx].astype(np.float32))
                wb = t.from_numpy(w_class[y_train[idx]].astype(np.float32))
                optimiser.zero_grad()
                loss = t.nn.functional.binary_cross_entropy_with_logits(model(xb), yb, weight=wb)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * idx.size
            val_logits = self._logits(model, x_val, cfg.batch_size)
            aucpr = average_precision(val_logits, y_val)
            history.append(
                {"epoch": epoch, "loss": total / y_train.size, "val_aucpr": float(aucpr)}
            )
            log.debug("epoch %d: loss %.4f, validation AUCPR %.4f", epoch, total, aucpr)
            if bar is not None:
                bar.set_postfix(loss=f"{total / y_train.size:.4f}", val_aucpr=f"{aucpr:.4f}")
                bar.update()
            if aucpr > best[0]:
                best = (aucpr, epoch, copy.deepcopy(model.state_dict()))
                stale = 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    log.info("early stop after epoch %d (best %d)", epoch, best[1])
                    break
        if bar is not None:
            bar.close()
        model.load_state_dict(best[2])
        model.eval()
        self.model_ = model
        self.history_ = history
        self.best_epoch_ = int(best[1])
        val_logits = self._logits(model, x_val, cfg.batch_size)
        self.temperature_ = fit_temperature(val_logits, y_val) if cfg.calibrate else 1.0
        val_prob = sigmoid(val_logits / self.temperature_)
        self.threshold_ = threshold_for_fnr(val_prob, y_val, cfg.target_fnr)
        self.validation_report_: ClassificationReport = classification_report(
            val_prob, y_val, threshold=self.threshold_
        )
        self._set_identity()
        return self

    @staticmethod
    def _model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dropout": cfg.dropout, "inputs": cfg.inputs}
        if cfg.arch == "resnet":
            kwargs["tta"] = cfg.tta
        return kwargs

    def _set_identity(self) -> None:
        self.classes_ = np.array([0, 1])
        self.model_name_ = f"skyscene-rb-{self.arch}"
        self.model_version_ = _state_hash(self.model_.state_dict(), self.arch)

    @staticmethod
    def _logits(model, x: np.ndarray, batch_size: int) -> np.ndarray:
        from skyscene.classify._torch import torch

        t = torch()
        was_training = model.training
        model.eval()
        out = []
        with t.inference_mode():
            for start in range(0, x.shape[0], batch_size):
                # channels-last: oneDNN's fast convolution layout on CPUs (~1.5x)
                xb = as_tensor(x[start : start + batch_size])
                out.append(model(xb.contiguous(memory_format=t.channels_last)).numpy())
        model.train(was_training)
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    # ------------------------------------------------------------------ inference
    def score(self, X, *, batch_size: int = 1024, source: str = "input") -> ScoreResult:
        """Calibrated real/bogus probabilities of raw triplets ``X`` (N, 3, size, size).

        NaN pixels are set to 0 and counted (``ScoreResult.n_nan``); a triplet that is
        NaN everywhere, or of the wrong size, is a :class:`DataError` naming ``source``.
        The braai normalisation runs batch by batch in torch (the same figures as
        :func:`~skyscene.classify.models.normalise_triplets` to float32 rounding).

        (Not scikit-learn's ``score``, which would be an accuracy; use
        :meth:`predict_proba` in scikit-learn pipelines.)
        """
        self._check_fitted()
        check_int("batch_size", batch_size, low=1)
        logits, n_nan = self._stream_logits(X, batch_size, source)
        return ScoreResult(
            rb=sigmoid(logits / self.temperature_),
            n_nan=n_nan,
            model_name=self.model_name_,
            model_version=self.model_version_,
        )

    def _stream_logits(self, X, batch_size: int, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Normalise and score ``X`` batch by batch (the fast scoring path)."""
        from skyscene.classify._torch import torch
        from skyscene.classify.models import normalise_tensor

        t = torch()
        x = np.asarray(X)
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
            raise DataError(f"{source}: triplets have shape {x.shape}; expected (N, 3, size, size)")
        if x.shape[2] != self.size:
            raise DataError(
                f"{source}: cutouts are {x.shape[2]}x{x.shape[3]}; "
                f"the model takes {self.size}x{self.size}"
            )
        model = self.model_
        was_training = model.training
        model.eval()
        logits, counts, all_nan = [], [], []
        try:
            with t.inference_mode():
                for start in range(0, x.shape[0], batch_size):
                    xb = t.from_numpy(
                        np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32)
                    )
                    xb, n_nan = normalise_tensor(xb)
                    counts.append(n_nan.numpy())
                    all_nan.append((n_nan == xb[0].numel()).numpy())
                    xb = xb.contiguous(memory_format=t.channels_last)
                    logits.append(model(xb).numpy())
        finally:
            model.train(was_training)
        bad = np.flatnonzero(np.concatenate(all_nan)) if all_nan else np.zeros(0, int)
        if bad.size:
            shown = ", ".join(str(i) for i in bad[:5]) + (" ..." if bad.size > 5 else "")
            raise DataError(
                f"{source}: {bad.size} triplet(s) are NaN in every pixel (index {shown}); "
                "nothing to score"
            )
        if not logits:
            raise DataError(f"{source}: no triplets (0 cutouts)")
        return (
            np.concatenate(logits).astype(np.float64),
            np.concatenate(counts).astype(np.int64),
        )

    def decision_function(self, X) -> np.ndarray:
        """Calibrated logits ``logit / temperature_`` (N,)."""
        self._check_fitted()
        return self._stream_logits(X, 1024, "input")[0] / self.temperature_

    def predict_proba(self, X) -> np.ndarray:
        """``(N, 2)``: probabilities of bogus and real."""
        p = self.score(X).rb
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """1 where ``rb >= threshold_`` else 0."""
        return (self.score(X).rb >= self.threshold_).astype(np.int64)


def _augment(t, xb, k: np.ndarray):
    """Apply element ``k[i]`` of the 8 flips/rotations to triplet ``i``."""
    from skyscene.classify.models import dihedral

    out = xb.clone()
    for element in range(1, 8):
        sel = np.flatnonzero(k == element)
        if sel.size:
            index = t.from_numpy(sel)
            out[index] = dihedral(xb[index], element)
    return out


def _blur_difference(t, xb, rng: np.random.Generator, high: float):
    """Convolve the difference cutout (channel 2) of a random half of ``xb`` with a round
    Gaussian of σ ~ U(0.3, high) px (zero padding), then L2-normalise it again."""
    n = xb.shape[0]
    sel = np.flatnonzero(rng.random(n) < 0.5)
    sigma = rng.uniform(0.3, high, sel.size)
    if not sel.size:
        return xb
    radius = int(np.ceil(3 * high))
    r = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (r[None, :] / sigma[:, None]) ** 2)
    g /= g.sum(axis=1, keepdims=True)
    kernel = t.from_numpy((g[:, :, None] * g[:, None, :]).astype(np.float32))[:, None]
    index = t.from_numpy(sel)
    d = xb[index, 2:3].contiguous().reshape(1, sel.size, *xb.shape[2:])
    d = t.nn.functional.conv2d(d, kernel, padding=radius, groups=sel.size)[0]
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
    out = xb.clone()
    out[index, 2] = d
    return out

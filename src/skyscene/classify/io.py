"""Files of the real/bogus classifier: training sets (HDF5), checkpoints (torch), triplets.

The only module of :mod:`skyscene.classify` that opens files; every output is written
atomically (:func:`skyscene.io.atomic_path`). Formats are documented in
``docs/classify.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from skyscene.classify.models import ARCHITECTURES, stack_triplets
from skyscene.classify.training_set import TrainingSet
from skyscene.errors import DataError, InputFileError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "DEFAULT_MODEL",
    "TRAINING_SET_FORMAT",
    "TRAINING_SET_VERSION",
    "TripletFile",
    "default_model_path",
    "load_model",
    "read_alert_triplets",
    "read_store_triplets",
    "read_training_set",
    "read_triplets",
    "save_model",
    "write_training_set",
]

TRAINING_SET_FORMAT = "skyscene-rb-training-set"
TRAINING_SET_VERSION = 1
CHECKPOINT_FORMAT = "skyscene-rb-checkpoint"
CHECKPOINT_VERSION = 1
_CUTOUTS = ("science", "reference", "difference")
#: File name of the pretrained model shipped in ``skyscene/classify/data`` (docs/classify.md).
DEFAULT_MODEL = "rb_compact_snr_v2.pt"


def _h5py():
    from skyscene.errors import require

    return require("h5py", "rb")


# ----------------------------------------------------------------------------- training sets
def write_training_set(path: str | os.PathLike, data: TrainingSet) -> Path:
    """Write a :class:`TrainingSet` to HDF5 atomically; return the path.

    Layout: ``science``, ``reference``, ``difference`` (N, size, size) float32 (gzip 1,
    one cutout per chunk), ``label`` int8 (1 real, 0 bogus), ``kind`` and ``group``
    (UTF-8 strings), ``candid`` int64, ``features/<name>`` (N,) per candidate feature;
    root attributes ``format``, ``format_version``, ``skyscene_version``, ``meta`` (JSON).
    """
    import skyscene
    from skyscene.io import atomic_path, jsonable_meta

    h5py = _h5py()
    path = Path(path)
    string = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        n, size = len(data), data.science.shape[-1]
        for name in _CUTOUTS:
            f.create_dataset(
                name,
                data=getattr(data, name).astype(np.float32),
                chunks=(1, size, size) if n else None,
                compression="gzip" if n else None,
                compression_opts=1 if n else None,
            )
        f.create_dataset("label", data=data.label.astype(np.int8))
        f.create_dataset("kind", data=np.asarray(data.kind, dtype=object), dtype=string)
        f.create_dataset("group", data=np.asarray(data.group, dtype=object), dtype=string)
        f.create_dataset("candid", data=data.candid.astype(np.int64))
        features = f.create_group("features")
        for name, values in data.features.items():
            values = np.asarray(values)
            if values.dtype.kind in "US":
                features.create_dataset(name, data=values.astype(object), dtype=string)
            else:
                features.create_dataset(name, data=values)
        f.attrs["format"] = TRAINING_SET_FORMAT
        f.attrs["format_version"] = TRAINING_SET_VERSION
        f.attrs["skyscene_version"] = skyscene.__version__
        f.attrs["meta"] = json.dumps(jsonable_meta(dict(data.meta)))
    return path


def _open_h5(path: Path):
    h5py = _h5py()
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(f"{path}: not a readable HDF5 file ({exc})") from None


def read_training_set(path: str | os.PathLike) -> TrainingSet:
    """Read what :func:`write_training_set` wrote; missing datasets are named."""
    path = Path(path)
    with _open_h5(path) as f:
        if f.attrs.get("format") != TRAINING_SET_FORMAT:
            raise InputFileError(
                f"{path}: not a skyscene real/bogus training set (attribute format is "
                f"{f.attrs.get('format')!r}, expected {TRAINING_SET_FORMAT!r})"
            )
        version = int(f.attrs.get("format_version", -1))
        if version != TRAINING_SET_VERSION:
            raise InputFileError(
                f"{path}: training-set format version {version}; this skyscene reads "
                f"version {TRAINING_SET_VERSION}"
            )
        missing = [k for k in (*_CUTOUTS, "label", "kind", "group") if k not in f]
        if missing:
            raise InputFileError(f"{path}: missing dataset(s) {', '.join(missing)}")
        arrays = {k: np.asarray(f[k][...], dtype=np.float32) for k in _CUTOUTS}
        label = np.asarray(f["label"][...]).astype(np.int64)
        kind = np.asarray(f["kind"].asstr()[...], dtype=str)
        group = np.asarray(f["group"].asstr()[...], dtype=str)
        candid = (
            np.asarray(f["candid"][...], dtype=np.int64)
            if "candid" in f
            else np.zeros(label.size, np.int64)
        )
        features = {}
        for name, ds in f.get("features", {}).items():
            features[name] = (
                np.asarray(ds.asstr()[...], dtype=str)
                if ds.dtype.kind == "O"
                else np.asarray(ds[...])
            )
        meta = json.loads(f.attrs.get("meta", "{}"))
    try:
        return TrainingSet(
            **arrays,
            label=label,
            kind=kind,
            group=group,
            candid=candid,
            features=features,
            meta=meta,
        )
    except DataError as exc:
        raise InputFileError(f"{path}: {exc}") from None


# ----------------------------------------------------------------------------- triplet files
class TripletFile:
    """Triplets read from a ``.npz`` or ``.h5`` file (see :func:`read_triplets`).

    Attributes
    ----------
    triplets : ndarray of float32, (N, 3, size, size)
    index : ndarray of int64, (N,)
        ``candid`` when the file has one, else the row number.
    index_name : str
        ``"candid"`` or ``"index"``.
    path : Path
    """

    def __init__(self, triplets: np.ndarray, index: np.ndarray, index_name: str, path: Path):
        self.triplets = triplets
        self.index = index
        self.index_name = index_name
        self.path = path
        self.extra: dict[str, Any] = {}

    def __len__(self) -> int:
        return int(self.triplets.shape[0])


def read_triplets(path: str | os.PathLike) -> TripletFile:
    """Triplets of a ``.npz`` or ``.h5``/``.hdf5`` file holding ``science``,
    ``reference``, ``difference`` (N, size, size) and optionally ``candid``.

    Raises
    ------
    InputFileError
        Missing, empty or unreadable file; a missing array (named).
    DataError
        Wrong shapes or no triplets (the file named).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file")
    arrays: dict[str, Any] = {}
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                names = set(z.files)
                for k in (*_CUTOUTS, "candid"):
                    if k in names:
                        arrays[k] = z[k]
        except (OSError, ValueError) as exc:
            raise InputFileError(f"{path}: not a readable .npz file ({exc})") from None
    elif suffix in (".h5", ".hdf5"):
        with _open_h5(path) as f:
            for k in (*_CUTOUTS, "candid"):
                if k in f:
                    arrays[k] = f[k][...]
    else:
        raise InputFileError(f"{path}: triplet files are .npz or .h5, got {suffix!r}")
    missing = [k for k in _CUTOUTS if k not in arrays]
    if missing:
        raise InputFileError(
            f"{path}: missing array(s) {', '.join(missing)} (need science, reference, "
            "difference of shape (N, 63, 63))"
        )
    triplets = stack_triplets(*(arrays[k] for k in _CUTOUTS), source=str(path))
    if "candid" in arrays:
        index, name = np.asarray(arrays["candid"], dtype=np.int64).ravel(), "candid"
        if index.size != triplets.shape[0]:
            raise DataError(f"{path}: {index.size} candid values for {triplets.shape[0]} triplets")
    else:
        index, name = np.arange(triplets.shape[0], dtype=np.int64), "index"
    return TripletFile(triplets, index, name, path)


# ----------------------------------------------------------------------------- checkpoints
def save_model(path: str | os.PathLike, classifier: Any, *, metrics: dict | None = None) -> Path:
    """Write a fitted :class:`~skyscene.classify.RealBogusClassifier` checkpoint atomically.

    The checkpoint (``torch.save`` of a dict, loadable with ``weights_only=True``) holds
    ``format``, ``format_version``, ``model_name``, ``model_version``, ``arch``,
    ``config``, ``state_dict``, ``temperature``, ``threshold``, ``data_hash``,
    ``metrics`` (validation, and ``metrics`` given here, e.g. the test split),
    ``history``, ``best_epoch`` and ``skyscene_version``.
    """
    import skyscene
    from skyscene.classify._torch import torch
    from skyscene.io import atomic_path, jsonable_meta

    t = torch()
    classifier._check_fitted()
    record = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model_name": classifier.model_name_,
        "model_version": classifier.model_version_,
        "arch": classifier.arch,
        "config": classifier.config.to_dict(),
        "state_dict": classifier.model_.state_dict(),
        "temperature": float(classifier.temperature_),
        "threshold": float(classifier.threshold_),
        "data_hash": classifier.data_hash_,
        "metrics": jsonable_meta(
            {
                "validation": classifier.validation_report_.to_dict(),
                **(metrics or {}),
            }
        ),
        "history": jsonable_meta({"h": classifier.history_})["h"],
        "best_epoch": int(classifier.best_epoch_),
        "skyscene_version": skyscene.__version__,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        t.save(record, tmp)
    return path


def default_model_path() -> Path:
    """The pretrained model shipped with the package (:data:`DEFAULT_MODEL`)."""
    from importlib.resources import files

    path = Path(str(files("skyscene.classify") / "data" / DEFAULT_MODEL))
    if not path.is_file():
        raise InputFileError(
            f"model file {path}: the shipped model is missing from this installation "
            "(give a model file, e.g. --model MODEL.pt)"
        )
    return path


def load_model(path: str | os.PathLike | None = None):
    """A fitted :class:`~skyscene.classify.RealBogusClassifier` from a checkpoint;
    ``path=None`` loads the shipped pretrained model (:func:`default_model_path`).

    Raises
    ------
    InputFileError
        Missing or empty file, not a skyscene checkpoint, another format version, an
        unknown architecture, or weights that do not fit it: one line naming the file.
    """
    from skyscene.classify._torch import torch
    from skyscene.classify.classifier import RealBogusClassifier
    from skyscene.classify.metrics import ClassificationReport
    from skyscene.classify.models import build_model

    t = torch()
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise InputFileError(f"model file {path}: no such file")
    if path.stat().st_size == 0:
        raise InputFileError(f"model file {path}: empty file")
    try:
        record = t.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(
            f"model file {path}: not a skyscene real/bogus checkpoint ({reason})"
        ) from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise InputFileError(f"model file {path}: not a skyscene real/bogus checkpoint")
    version = record.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise InputFileError(
            f"model file {path}: checkpoint format version {version!r}; this skyscene "
            f"reads version {CHECKPOINT_VERSION} (retrain with 'skyscene rb train')"
        )
    arch = record.get("arch")
    if arch not in ARCHITECTURES:
        raise InputFileError(
            f"model file {path}: unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})"
        )
    try:
        params = {**record["config"], "arch": arch}
        clf = RealBogusClassifier(**params)
        cfg = clf.config
        model = build_model(arch, size=cfg.size, **clf._model_kwargs(cfg))
        model.load_state_dict(record["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise InputFileError(f"model file {path}: weights do not fit {arch!r} ({reason})") from None
    model.eval()
    clf.model_ = model
    clf.temperature_ = float(record["temperature"])
    clf.threshold_ = float(record["threshold"])
    clf.data_hash_ = str(record.get("data_hash", ""))
    clf.history_ = list(record.get("history", []))
    clf.best_epoch_ = int(record.get("best_epoch", 0))
    clf.metrics_ = dict(record.get("metrics", {}))
    val = clf.metrics_.get("validation")
    if val:
        clf.validation_report_ = ClassificationReport(**val)
    clf._set_identity()
    if clf.model_version_ != record.get("model_version"):
        raise InputFileError(
            f"model file {path}: weights do not match the recorded model version "
            f"{record.get('model_version')!r} (file altered?)"
        )
    clf.source_ = str(path)
    clf.skyscene_version_ = str(record.get("skyscene_version", ""))
    return clf


# ----------------------------------------------------------------------------- alerts, store
def _fit_stamp(stamp: np.ndarray | None, size: int, where: str) -> np.ndarray:
    """A stamp as (size, size): smaller ones (cut at a CCD edge) NaN-padded, centred."""
    if stamp is None:
        raise DataError(f"{where}: cutout missing")
    stamp = np.asarray(stamp, dtype=np.float32)
    if stamp.ndim != 2:
        raise DataError(f"{where}: cutout has shape {stamp.shape}, expected 2-D")
    ny, nx = stamp.shape
    if ny > size or nx > size:
        raise DataError(f"{where}: cutout is {ny}x{nx}, larger than the model's {size}x{size}")
    if (ny, nx) == (size, size):
        return stamp
    out = np.full((size, size), np.nan, np.float32)
    y0, x0 = (size - ny) // 2, (size - nx) // 2
    out[y0 : y0 + ny, x0 : x0 + nx] = stamp
    return out


def read_alert_triplets(source: Any, *, size: int = 63) -> TripletFile:
    """Triplets of alert packets (an ``.avro`` file, a folder of them, or a list).

    ZTF stamps cut at a CCD edge (smaller than ``size``) are padded with NaN (set to 0
    and counted when scored); a missing cutout is a :class:`DataError` naming the file.
    ``index`` is the ``candid``; ``extra`` holds ZTF's ``rb``/``drb`` where present.
    """
    from skyscene.alerts import iter_alerts

    rows, candids, files, rb, drb = [], [], [], [], []
    for alert in iter_alerts(source):
        where = f"alert file {alert.source} (candid {alert.candid})"
        rows.append(
            np.stack([_fit_stamp(getattr(alert, k), size, f"{where}: {k}") for k in _CUTOUTS])
        )
        candids.append(int(alert.candid))
        files.append(str(alert.source))
        rb.append(alert.candidate.get("rb"))
        drb.append(alert.candidate.get("drb"))
    if not rows:
        raise InputFileError(f"{source}: no alert packets")
    out = TripletFile(np.stack(rows), np.asarray(candids, np.int64), "candid", Path(files[0]))
    out.extra = {
        "file": np.asarray(files),
        "ztf_rb": np.array([np.nan if v is None else v for v in rb], float),
        "ztf_drb": np.array([np.nan if v is None else v for v in drb], float),
    }
    return out


def read_store_triplets(store: Any, *, size: int = 63) -> TripletFile:
    """Triplets of every candidate of a :class:`~skyscene.store.CandidateStore` that has
    its three cutouts stored (the others are counted in ``extra["n_without_cutouts"]``)."""
    from skyscene.alerts import decode_stamp

    table = store.candidates()
    rows, candids, missing = [], [], 0
    for candid in np.asarray(table["candid"], np.int64) if len(table) else []:
        stamps = [store.cutout(int(candid), k) for k in _CUTOUTS]
        if any(s is None for s in stamps):
            missing += 1
            continue
        where = f"database {store._shown_url()} candid {candid}"
        rows.append(
            np.stack(
                [
                    _fit_stamp(decode_stamp(s, name=f"{where} {k}"), size, f"{where} {k}")
                    for s, k in zip(stamps, _CUTOUTS, strict=True)
                ]
            )
        )
        candids.append(int(candid))
    if not rows:
        raise DataError(
            f"database {store._shown_url()}: no candidates with stored cutouts "
            f"({len(table)} candidates, {missing} without cutouts)"
        )
    out = TripletFile(np.stack(rows), np.asarray(candids, np.int64), "candid", Path("."))
    out.extra = {"n_without_cutouts": missing}
    return out

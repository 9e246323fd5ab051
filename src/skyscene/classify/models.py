"""Real/bogus network architectures in pure ``torch.nn`` and the braai input normalisation.

Two architectures, registered by name in :data:`ARCHITECTURES`:

``vgg6``
    The braai baseline (Duev et al. 2019, MNRAS 489, 3582, Fig. 3): conv 16, conv 16
    (3x3, ReLU), 2x2 max-pool, dropout 0.25, conv 32, conv 32, 4x4 max-pool, dropout
    0.25, dense 256 (ReLU), dropout 0.5, one output (sigmoid of the logit). Input: 3
    channels (science, reference, difference), 63x63.
``resnet``
    A small residual network (He et al. 2016): a 3x3 stem of 16 channels, three stages
    of two basic blocks (16, 32, 64 channels, stride 2 between stages), batch norm,
    global average pooling and one output. At inference the 8 flips/rotations of the
    dihedral group D4 are averaged in logit space (a real point source looks the same
    after any of them; trails and columns keep their class).
``compact``
    A fast network for scoring at survey rates: a 5x5 stride-2 stem of 32 channels,
    3x3 stride-2 convolutions of 32 and 64 channels, a 3x3 convolution of 64, dense 64
    (ReLU, dropout), one output; 63x63 -> 32 -> 16 -> 8x8x64. ~7 M multiply-adds per
    triplet (vgg6: ~19 M), but no 3x3 convolutions at full resolution.

The networks output *logits*; probabilities are ``sigmoid(logit / T)`` with the
temperature ``T`` of :mod:`skyscene.classify.calibration`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyscene.errors import DataError

__all__ = [
    "ARCHITECTURES",
    "INPUTS",
    "NormalisedTriplets",
    "build_model",
    "dihedral",
    "noise_units",
    "normalise_tensor",
    "normalise_triplets",
    "stack_triplets",
]

#: Names of the architectures :func:`build_model` knows.
ARCHITECTURES = ("vgg6", "resnet", "compact")

#: Network inputs and their channel counts. ``braai``: science, reference, difference,
#: each divided by its L2 norm. ``snr``: those three plus each cutout in its own noise
#: units (:func:`noise_units`, computed by the network from the braai input): the
#: amplitude relative to the noise, which the L2 normalisation hides from the convolutions.
INPUTS = {"braai": 3, "snr": 6}

#: The noise-unit channels' median and MAD are taken on every ``SNR_STEP``-th pixel
#: of each cutout (a 21x21 grid of a 63x63 cutout: cheap, and a source covers little).
SNR_STEP = 3

#: The noise-unit channels are ``z / SNR_SCALE`` clipped to ``±SNR_CLIP`` (|z| <= 100 σ).
SNR_SCALE = 10.0
SNR_CLIP = 10.0


@dataclass(frozen=True, kw_only=True)
class NormalisedTriplets:
    """Network input made from cutout triplets.

    Attributes
    ----------
    data : ndarray of float32, (N, 3, size, size)
        Science, reference, difference; NaN set to 0, each cutout divided by its L2 norm
        (a cutout of zeros stays zero).
    n_nan : ndarray of int, (N,)
        NaN pixels set to 0 in each triplet (all three cutouts together).
    """

    data: np.ndarray
    n_nan: np.ndarray


def stack_triplets(science, reference, difference, *, source: str = "input") -> np.ndarray:
    """``(N, 3, size, size)`` float32 from three ``(N, size, size)`` arrays; shapes checked.

    ``source`` names the input (a file) in the errors.
    """
    arrays = [np.asarray(a, dtype=np.float32) for a in (science, reference, difference)]
    for name, array in zip(("science", "reference", "difference"), arrays, strict=True):
        if array.ndim == 2:
            raise DataError(
                f"{source}: {name} has shape {array.shape}; expected (N, size, size) "
                "(a stack of cutouts; use array[None] for one)"
            )
        if array.ndim != 3 or array.shape[1] != array.shape[2]:
            raise DataError(
                f"{source}: {name} has shape {array.shape}; expected (N, size, size) "
                "with square cutouts"
            )
    if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
        raise DataError(
            f"{source}: science, reference, difference shapes differ: "
            f"{arrays[0].shape}, {arrays[1].shape}, {arrays[2].shape}"
        )
    if arrays[0].shape[0] == 0:
        raise DataError(f"{source}: no triplets (0 cutouts)")
    return np.stack(arrays, axis=1)


def normalise_triplets(
    triplets: np.ndarray, *, source: str = "input", size: int | None = None
) -> NormalisedTriplets:
    """braai's pre-processing: NaN → 0, then each cutout divided by its L2 norm.

    Parameters
    ----------
    triplets : ndarray, (N, 3, size, size)
        Science, reference, difference cutouts (any float dtype).
    source : str
        Names the input (a file) in errors.
    size : int, optional
        Required cutout side (the model's); a different one is a :class:`DataError`.

    Raises
    ------
    DataError
        Wrong shape, or a triplet whose three cutouts are all NaN (nothing to score),
        naming ``source`` and the triplet index.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 3, 5, 5)); x[0, 2, 0, 0] = np.nan
    >>> out = normalise_triplets(x)
    >>> out.n_nan.tolist(), round(float(np.linalg.norm(out.data[0, 0])), 6)
    ([1], 1.0)
    """
    x = np.asarray(triplets)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
        raise DataError(f"{source}: triplets have shape {x.shape}; expected (N, 3, size, size)")
    if size is not None and x.shape[2] != size:
        raise DataError(
            f"{source}: cutouts are {x.shape[2]}x{x.shape[3]}; the model takes {size}x{size}"
        )
    x = np.array(x, dtype=np.float32, copy=True)
    nan = np.isnan(x)
    all_nan = nan.all(axis=(1, 2, 3))
    if all_nan.any():
        bad = np.flatnonzero(all_nan)
        shown = ", ".join(str(i) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise DataError(
            f"{source}: {len(bad)} triplet(s) are NaN in every pixel (index {shown}); "
            "nothing to score"
        )
    n_nan = nan.sum(axis=(1, 2, 3))
    x[nan] = 0.0
    np.nan_to_num(x, copy=False, posinf=0.0, neginf=0.0)
    norm = np.sqrt(np.einsum("ncij,ncij->nc", x, x, dtype=np.float64)).astype(np.float32)
    norm[norm == 0] = 1.0
    x /= norm[:, :, None, None]
    return NormalisedTriplets(data=x, n_nan=n_nan.astype(np.int64))


def normalise_tensor(x: Any) -> tuple[Any, Any]:
    """:func:`normalise_triplets` in torch on one batch (N, 3, size, size), float32:
    returns the normalised tensor and the NaN count per triplet (the scoring path; the
    caller checks for all-NaN triplets). Multi-threaded and cache-friendly per batch."""
    t = _torch()
    nan = t.isnan(x)
    n_nan = nan.sum(dim=(1, 2, 3))
    y = t.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    norm = t.linalg.vector_norm(y, dim=(2, 3), keepdim=True)
    norm = t.where(norm == 0, t.ones_like(norm), norm)
    return y / norm, n_nan


def noise_units(x: Any) -> Any:
    """The ``snr`` input (:data:`INPUTS`): ``(N, C, s, s)`` -> ``(N, 2C, s, s)``, the
    cutouts followed by each cutout in its own noise units, ``clip((x - median) /
    (SNR_SCALE sigma), ±SNR_CLIP)``, ``sigma = 1.4826 MAD``, median and MAD over every
    :data:`SNR_STEP`-th pixel. Scale-free, so the braai-normalised cutouts give the
    same channels as the raw ones; a cutout of zeros (MAD 0) gives zeros."""
    t = _torch()
    n, c = x.shape[:2]
    out = x.new_empty((n, 2 * c, *x.shape[2:]))
    if x.dim() == 4 and x.is_contiguous(memory_format=t.channels_last):
        out = out.contiguous(memory_format=t.channels_last)  # keep oneDNN's fast layout
    out[:, :c] = x
    grid = x[:, :, ::SNR_STEP, ::SNR_STEP].flatten(2)
    med = grid.median(dim=-1, keepdim=True).values
    mad = 1.4826 * (grid - med).abs().median(dim=-1, keepdim=True).values
    inv = t.where(mad > 0, 1.0 / (SNR_SCALE * t.where(mad > 0, mad, t.ones_like(mad))), 0.0)
    noise = out[:, c:]
    t.sub(x, med[..., None], out=noise)
    noise.mul_(inv[..., None]).clamp_(-SNR_CLIP, SNR_CLIP)
    return out


def dihedral(x: Any, k: int) -> Any:
    """Element ``k`` (0-7) of the dihedral group D4 on the last two axes of a tensor:
    ``k % 4`` quarter turns, then a left-right flip when ``k >= 4``."""
    t = _torch()
    y = t.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return t.flip(y, dims=(-1,)) if k >= 4 else y


def _torch():
    from skyscene.classify._torch import torch

    return torch()


@functools.cache
def _classes() -> dict[str, Any]:
    """The ``nn.Module`` classes (defined on first use so that torch stays optional)."""
    t = _torch()
    nn: Any = t.nn

    class VGG6(nn.Module):
        """braai's VGG6 (Duev et al. 2019): 4 conv + 1 dense layer, sigmoid output."""

        def __init__(self, size: int = 63, dropout: float = 0.5, inputs: str = "braai"):
            super().__init__()
            self.inputs = inputs
            self.features = nn.Sequential(
                nn.Conv2d(INPUTS[inputs], 16, 3),
                nn.ReLU(),
                nn.Conv2d(16, 16, 3),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Dropout(0.25),
                nn.Conv2d(16, 32, 3),
                nn.ReLU(),
                nn.Conv2d(32, 32, 3),
                nn.ReLU(),
                nn.MaxPool2d(4),
                nn.Dropout(0.25),
            )
            side = (((size - 4) // 2) - 4) // 4
            if side < 1:
                raise DataError(f"cutout size {size} is too small for vgg6 (>= 22)")
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(32 * side * side, 256),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(256, 1),
            )

        def forward(self, x):
            if self.inputs == "snr":
                x = noise_units(x)
            return self.classifier(self.features(x)).squeeze(-1)

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )
            )

        def forward(self, x):
            y = t.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return t.relu(y + self.short(x))

    class SmallResNet(nn.Module):
        """Small residual network; ``tta=True`` averages the 8 D4 transforms' logits."""

        def __init__(
            self, size: int = 63, dropout: float = 0.2, tta: bool = True, inputs: str = "braai"
        ):
            super().__init__()
            self.tta = tta
            self.inputs = inputs
            self.stem = nn.Sequential(
                nn.Conv2d(INPUTS[inputs], 16, 3, padding=1, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU(),
            )
            self.stages = nn.Sequential(
                BasicBlock(16, 16, 1),
                BasicBlock(16, 16, 1),
                BasicBlock(16, 32, 2),
                BasicBlock(32, 32, 1),
                BasicBlock(32, 64, 2),
                BasicBlock(64, 64, 1),
            )
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(64, 1)
            )

        def _logit(self, x):
            return self.head(self.stages(self.stem(x))).squeeze(-1)

        def forward(self, x):
            if self.inputs == "snr":
                x = noise_units(x)
            if self.training or not self.tta:
                return self._logit(x)
            return t.stack([self._logit(dihedral(x, k)) for k in range(8)]).mean(0)

    class CompactCNN(nn.Module):
        """Fast network that downsamples early: 5x5 stride-2 stem, two stride-2 3x3
        convolutions, one 3x3 convolution, dense 64."""

        def __init__(self, size: int = 63, dropout: float = 0.5, inputs: str = "braai"):
            super().__init__()
            self.inputs = inputs
            self.features = nn.Sequential(
                nn.Conv2d(INPUTS[inputs], 32, 5, stride=2, padding=2),
                nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3, padding=1),
                nn.ReLU(),
            )
            side = size
            for _ in range(3):
                side = (side - 1) // 2 + 1
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(64 * side * side, 64),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(64, 1),
            )

        def forward(self, x):
            if self.inputs == "snr":
                x = noise_units(x)
            return self.classifier(self.features(x)).squeeze(-1)

    return {"vgg6": VGG6, "resnet": SmallResNet, "compact": CompactCNN}


def build_model(arch: str, *, size: int = 63, **kwargs: Any) -> Any:
    """A fresh (randomly initialised, from torch's RNG) network of architecture ``arch``.

    Parameters
    ----------
    arch : {"vgg6", "resnet", "compact"}
    size : int
        Cutout side the network takes.
    **kwargs
        ``dropout`` (all), ``tta`` (resnet: average the 8 flips/rotations in eval mode),
        ``inputs`` (``braai`` or ``snr``: the network appends the noise-unit channels
        itself, :func:`noise_units`, so it always takes braai-normalised triplets).
    """
    from skyscene._validation import check_choice

    check_choice("arch", arch, ARCHITECTURES)
    if "inputs" in kwargs:
        check_choice("inputs", kwargs["inputs"], tuple(INPUTS))
    return _classes()[arch](size=size, **kwargs)


def n_parameters(model: Any) -> int:
    """Trainable parameters of a network."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def as_tensor(x: np.ndarray) -> Any:
    """A float32 torch tensor sharing memory with ``x`` where possible."""
    return _torch().from_numpy(np.ascontiguousarray(x, dtype=np.float32))

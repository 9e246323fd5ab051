"""Training sets made by the real search pipeline: simulate → ZOGY → find → cut → label.

:func:`make_training_set` simulates pairs over wide ranges of observing conditions,
subtracts them with :class:`skyscene.diffim.Zogy`, finds candidates with
:func:`skyscene.candidates.find_candidates` and labels every candidate by matching it
to the simulation's truth (:func:`label_candidates`): **real** when within
``match_radius`` of an injected transient, variable star or fading source; **bogus**
otherwise, with the ``kind`` of the nearest artefact (cosmic ray, hot pixel, bad column,
trail, saturated star, dipole, bright-star or galaxy-core residual, mover) or
``edge`` / ``noise_peak`` when nothing was injected there.

The simulator is a strategy: any callable ``simulator(config, rng, index) ->
SimulatedScene`` (science and reference :class:`~skyscene.io.Exposure`, a truth table,
a group id). The default, :func:`search_scene`, is the search simulator
(:func:`skyscene.datasets.search.simulate_search_pair`: its own wide ranges of seeing,
depth, PSF family and ellipticity, sky, saturation, hosts, and every artefact kind);
:func:`pair_scene` draws :func:`draw_conditions` over ``config``'s ranges for
:func:`skyscene.datasets.pairs.simulate_pair` (transients, cosmic rays, saturated stars).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyscene._validation import check_int, check_odd, check_positive, check_range
from skyscene.errors import DataError

__all__ = [
    "REAL_KINDS",
    "SimulatedScene",
    "TrainingSet",
    "TrainingSetConfig",
    "ambiguous_rows",
    "banded_search_scene",
    "draw_conditions",
    "label_candidates",
    "make_training_set",
    "pair_scene",
    "rich_search_scene",
    "search_scene",
]

log = logging.getLogger(__name__)

#: Truth kinds that are real (astrophysical changes); every other kind is bogus.
REAL_KINDS = ("transient", "variable", "fading")

#: Features copied from the candidate table into the training set.
FEATURES = (
    "scorr", "magpsf", "sigmapsf", "chipsf", "magap", "sigmagap", "magdiff", "diffmaglim",
    "fwhm", "aimage", "bimage", "elong", "nneg", "nbad", "sumrat", "mindtoedge", "distnr",
    "magnr", "sharpness", "roundness", "dipole", "flags", "xpos", "ypos",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainingSet:
    """Labelled cutout triplets (in memory; :mod:`skyscene.classify.io` reads/writes HDF5).

    Attributes
    ----------
    science, reference, difference : ndarray of float32, (N, size, size)
    label : ndarray of int64, (N,)
        1 real, 0 bogus.
    kind : ndarray of str, (N,)
        Truth kind of the match (``transient``, ..., ``noise_peak``, ``edge``).
    group : ndarray of str, (N,)
        Simulated night/CCD: splits keep a group together.
    candid : ndarray of int64, (N,)
    features : dict of str -> ndarray (N,)
        Candidate features (ZTF names, :data:`FEATURES` where present).
    meta : dict
        The maker's configuration and per-group conditions.
    """

    science: np.ndarray
    reference: np.ndarray
    difference: np.ndarray
    label: np.ndarray
    kind: np.ndarray
    group: np.ndarray
    candid: np.ndarray
    features: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.science.shape[0]
        for name in ("reference", "difference"):
            if getattr(self, name).shape != self.science.shape:
                raise DataError(
                    f"{name} has shape {getattr(self, name).shape}, science {self.science.shape}"
                )
        if self.science.ndim != 3:
            raise DataError(f"cutouts must be (N, size, size), got {self.science.shape}")
        for name in ("label", "kind", "group", "candid"):
            if len(getattr(self, name)) != n:
                raise DataError(f"{len(getattr(self, name))} values of {name} for {n} triplets")
        if n and not np.isin(self.label, (0, 1)).all():
            raise DataError("label must be 1 (real) or 0 (bogus)")

    def __len__(self) -> int:
        return int(self.science.shape[0])

    @property
    def triplets(self) -> np.ndarray:
        """``(N, 3, size, size)`` float32: science, reference, difference."""
        return np.stack([self.science, self.reference, self.difference], axis=1)

    def subset(self, index) -> TrainingSet:
        """Rows ``index`` (indices or boolean mask) as a new set."""
        return TrainingSet(
            science=self.science[index],
            reference=self.reference[index],
            difference=self.difference[index],
            label=self.label[index],
            kind=self.kind[index],
            group=self.group[index],
            candid=self.candid[index],
            features={k: np.asarray(v)[index] for k, v in self.features.items()},
            meta=dict(self.meta),
        )

    def counts(self) -> dict[str, int]:
        """Rows per kind."""
        kinds, n = np.unique(self.kind, return_counts=True)
        return {str(k): int(c) for k, c in zip(kinds, n, strict=True)}


@dataclass(frozen=True, kw_only=True)
class TrainingSetConfig:
    """Settings of :func:`make_training_set` (validated, frozen).

    Parameters
    ----------
    n_pairs : int
        Simulated pairs; each is its own ``group``.
    size : int
        Image side, pixels.
    cutout_size : int
        Triplet side (odd).
    threshold : float
        Candidate threshold on ``|S_corr|``.
    match_radius : float
        Largest distance (pixels) from a candidate to a truth entry (to a segment's
        nearest point for trails and columns) for a match.
    n_transients : (int, int)
        Range (inclusive) of injected transients per pair.
    transient_snr : (float, float)
        S/N range of the transients.
    science_fwhm : (float, float)
        Seeing range, pixels; the reference FWHM is 0.55–0.95 of it.
    sky : (float, float)
        Science sky range (log-uniform), counts per pixel.
    flux_ratio : (float, float)
        Science/reference flux-scale range (log-uniform).
    saturation : (float, float)
        Saturation-level range (log-uniform), counts.
    cosmic_rays_per_mpix : (float, float)
        Cosmic rays per million pixels in the science image (and a tenth in the
        reference).
    saturated_stars : (int, int)
        Saturated stars per pair.
    galaxy_density : (float, float)
        Galaxies per pixel (host brightness and count).
    bright_star_sigma : float
        A bogus candidate within ``match_radius`` of a static star brighter than this
        many sky σ (peak) is a ``psf_residual``; of such a galaxy a ``galaxy_residual``.
    """

    n_pairs: int = 20
    size: int = 512
    cutout_size: int = 63
    threshold: float = 5.0
    match_radius: float = 3.0
    n_transients: tuple[int, int] = (10, 40)
    transient_snr: tuple[float, float] = (3.0, 100.0)
    science_fwhm: tuple[float, float] = (2.0, 6.5)
    sky: tuple[float, float] = (100.0, 3000.0)
    flux_ratio: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (2e4, 1.5e5)
    cosmic_rays_per_mpix: tuple[float, float] = (20.0, 200.0)
    saturated_stars: tuple[int, int] = (0, 3)
    galaxy_density: tuple[float, float] = (5e-5, 3e-4)
    bright_star_sigma: float = 200.0

    def __post_init__(self) -> None:
        n = "TrainingSetConfig."
        check_int(n + "n_pairs", self.n_pairs, low=1)
        check_int(n + "size", self.size, low=64)
        check_odd(n + "cutout_size", self.cutout_size, low=23)
        check_positive(n + "threshold", self.threshold)
        check_positive(n + "match_radius", self.match_radius)
        check_positive(n + "bright_star_sigma", self.bright_star_sigma)
        for name in (
            "n_transients", "transient_snr", "science_fwhm", "sky", "flux_ratio",
            "saturation", "cosmic_rays_per_mpix", "saturated_stars", "galaxy_density",
        ):  # fmt: skip
            lo, hi = getattr(self, name)
            check_range(n + name, lo, low=0)
            check_range(n + name, hi, low=lo)
            object.__setattr__(self, name, (lo, hi))

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (recorded in the training set)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True, eq=False)
class SimulatedScene:
    """One simulated pair for :func:`make_training_set`.

    Attributes
    ----------
    science, reference : Exposure
    truth : mapping of columns
        ``kind``, ``x``, ``y`` (science pixels); optional ``length`` and ``angle``
        (radians) make an entry a segment centred on (x, y) (trails, bad columns).
    group : str
    conditions : dict
        The drawn conditions (recorded in the training set's meta).
    """

    science: Any
    reference: Any
    truth: Mapping[str, Any]
    group: str
    conditions: dict = field(default_factory=dict)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)


def draw_conditions(config: TrainingSetConfig, rng: np.random.Generator) -> dict[str, Any]:
    """:func:`~skyscene.datasets.pairs.simulate_pair` settings drawn over the ranges of
    ``config``: PSF families, seeing, Moffat index, ellipticity-free gradients, sky,
    gains, flux ratio, saturation, artefacts, host density."""
    fwhm = float(rng.uniform(*config.science_fwhm))
    families = ("moffat", "gaussian")
    science_psf = families[int(rng.integers(0, 2))]
    area = config.size**2 / 1e6
    n_cr = int(rng.uniform(*config.cosmic_rays_per_mpix) * area)
    return {
        "shape": (config.size, config.size),
        "science_psf": science_psf,
        "reference_psf": families[int(rng.integers(0, 2))],
        "science_fwhm": fwhm,
        "reference_fwhm": fwhm * float(rng.uniform(0.55, 0.95)),
        "moffat_beta": float(rng.uniform(2.5, 5.0)),
        "psf_gradient": float(rng.uniform(0.0, 0.1)) if science_psf == "moffat" else 0.0,
        "science_sky": _loguniform(rng, *config.sky),
        "reference_sky": _loguniform(rng, *config.sky) * 0.7,
        "science_gain": float(rng.uniform(1.0, 4.0)),
        "reference_gain": float(rng.uniform(4.0, 16.0)),
        "read_noise": float(rng.uniform(2.0, 10.0)),
        "flux_ratio": _loguniform(rng, *config.flux_ratio),
        "sky_gradient": float(rng.uniform(0.0, 0.1)),
        "saturation": _loguniform(rng, *config.saturation),
        "galaxy_density": _loguniform(rng, *config.galaxy_density),
        "star_density": _loguniform(rng, 1e-4, 8e-4),
        "n_transients": int(rng.integers(config.n_transients[0], config.n_transients[1] + 1)),
        "transient_snr": tuple(config.transient_snr),
        "transient_on_galaxy_fraction": float(rng.uniform(0.2, 0.6)),
        "n_cosmic_rays": n_cr,
        "n_cosmic_rays_reference": n_cr // 10,
        "n_saturated_stars": int(
            rng.integers(config.saturated_stars[0], config.saturated_stars[1] + 1)
        ),
    }


def pair_scene(config: TrainingSetConfig, rng: np.random.Generator, index: int) -> SimulatedScene:
    """The default simulator: :func:`draw_conditions` → ``simulate_pair``; truth =
    transients, artefacts, and bright stars/galaxies (as residual sites)."""
    from skyscene.datasets.pairs import simulate_pair

    conditions = draw_conditions(config, rng)
    pair = simulate_pair(rng=rng, **conditions)
    dx, dy = pair.offset
    kinds, xs, ys = [], [], []
    t = pair.transients
    kinds += ["transient"] * len(t)
    xs += list(np.asarray(t["x"], float))
    ys += list(np.asarray(t["y"], float))
    a = pair.artefacts
    if a is not None and len(a):
        in_ref = np.asarray(a["image"]) == "reference"
        kinds += [str(k) for k in a["kind"]]
        xs += list(np.asarray(a["x"], float) + np.where(in_ref, dx, 0.0))
        ys += list(np.asarray(a["y"], float) + np.where(in_ref, dy, 0.0))
    # bright static sources: sites of PSF-mismatch and galaxy-core residuals
    sigma = np.sqrt(conditions["science_sky"] / conditions["science_gain"])
    peak_per_flux = conditions["flux_ratio"] / (1.13 * conditions["science_fwhm"] ** 2)
    for table, kind in ((pair.stars, "psf_residual"), (pair.galaxies, "galaxy_residual")):
        if table is None or not len(table):
            continue
        bright = np.asarray(table["flux"], float) * peak_per_flux > config.bright_star_sigma * sigma
        kinds += [kind] * int(bright.sum())
        xs += list(np.asarray(table["x"], float)[bright] + dx)
        ys += list(np.asarray(table["y"], float)[bright] + dy)
    truth = {"kind": np.asarray(kinds, dtype=str), "x": np.asarray(xs), "y": np.asarray(ys)}
    return SimulatedScene(
        science=pair.science,
        reference=pair.reference,
        truth=truth,
        group=f"pair{index:05d}",
        conditions=conditions,
    )


def search_scene(config: TrainingSetConfig, rng: np.random.Generator, index: int) -> SimulatedScene:
    """The search simulator (:func:`skyscene.datasets.search.simulate_search_pair`) at
    ``config.size``, its own wide condition ranges, and its truth table (every
    injection and artefact with its ``kind``; trails, columns, bleeds as segments).
    The default simulator of :func:`make_training_set`."""
    from skyscene.datasets.search import SearchSimConfig, simulate_search_pair

    seed = int(rng.integers(0, 2**31 - 1))
    group = f"pair{index:05d}"
    pair = simulate_search_pair(
        SearchSimConfig(shape=(config.size, config.size)), rng=seed, pair_id=group
    )
    t = pair.truth
    truth = {name: np.asarray(t[name]) for name in ("kind", "x", "y", "length", "angle", "snr")}
    conditions = {"seed": seed, **pair.conditions.to_dict()}
    return SimulatedScene(
        science=pair.science,
        reference=pair.reference,
        truth=truth,
        group=group,
        conditions=conditions,
    )


#: Extra condition bands of :func:`banded_search_scene`: for each pair, each of these
#: search-simulator ranges is drawn from the simulator's own default range or, with
#: probability 1/2 and independently per parameter, from this wider band beyond it
#: (worse seeing, brighter sky, shallower science images). The gap between the two bands
#: (science FWHM 6-7.5 px, reference 4-5 px, sky 3000-6000, flux ratio 0.35-0.5) is
#: never drawn in training: the held-out test set of ``benchmarks/train_shipped_model.py``
#: lies there (conditions seen in no training pair, between the trained ones).
WIDE_BANDS: dict[str, tuple[float, float]] = {
    "science_fwhm": (7.5, 9.5),
    "reference_fwhm": (5.0, 6.5),
    "science_sky": (6000.0, 12000.0),
    "flux_ratio": (0.2, 0.35),
}


#: Extra settings of :func:`rich_search_scene` (``--conditions rich``): four times the
#: subtraction residuals of bright sources (misregistered stars with smaller and larger
#: shifts, stars with a broader or barely broader local PSF, bright galaxies), rounder to
#: more elliptical PSFs and Moffat wings from heavy to nearly Gaussian. The held-out
#: bands of :data:`WIDE_BANDS` stay undrawn.
RICH_SETTINGS: dict[str, object] = {
    "n_dipoles": 40,
    "dipole_shift": (0.1, 1.0),
    "n_psf_residuals": 40,
    "psf_residual_broadening": (1.03, 1.5),
    "n_bright_galaxies": 60,
    "science_axis_ratio": (0.6, 1.0),
    "moffat_beta": (1.8, 6.0),
}


def banded_search_scene(
    config: TrainingSetConfig, rng: np.random.Generator, index: int, **extra
) -> SimulatedScene:
    """:func:`search_scene` over two bands per condition (:data:`WIDE_BANDS`): a wider
    training simulator (``skyscene rb make-training --conditions banded``); ``extra``
    are further :class:`~skyscene.datasets.search.SearchSimConfig` settings."""
    from skyscene.datasets.search import SearchSimConfig, simulate_search_pair

    seed = int(rng.integers(0, 2**31 - 1))
    wide = rng.random(len(WIDE_BANDS)) < 0.5
    bands = {name: band for (name, band), w in zip(WIDE_BANDS.items(), wide, strict=True) if w}
    group = f"pair{index:05d}"
    sim = SearchSimConfig(shape=(config.size, config.size), **bands, **extra)
    pair = simulate_search_pair(sim, rng=seed, pair_id=group)
    t = pair.truth
    truth = {name: np.asarray(t[name]) for name in ("kind", "x", "y", "length", "angle", "snr")}
    conditions = {"seed": seed, "bands": sorted(bands), **pair.conditions.to_dict()}
    return SimulatedScene(
        science=pair.science,
        reference=pair.reference,
        truth=truth,
        group=group,
        conditions=conditions,
    )


def rich_search_scene(
    config: TrainingSetConfig, rng: np.random.Generator, index: int
) -> SimulatedScene:
    """:func:`banded_search_scene` with :data:`RICH_SETTINGS`: more and more varied
    residuals of bright sources (``skyscene rb make-training --conditions rich``)."""
    return banded_search_scene(config, rng, index, **RICH_SETTINGS)


#: Simulators of ``skyscene rb make-training --conditions``.
SIMULATORS = {"search": search_scene, "banded": banded_search_scene, "rich": rich_search_scene}


def _segment_distance(px, py, x, y, length, angle) -> np.ndarray:
    """Distances (M, K) from points (M,) to segments (K,) centred at (x, y)."""
    ux, uy = np.cos(angle), np.sin(angle)
    rx = px[:, None] - x[None, :]
    ry = py[:, None] - y[None, :]
    along = np.clip(rx * ux + ry * uy, -length / 2, length / 2)
    return np.hypot(rx - along * ux, ry - along * uy)


def label_candidates(
    xpos,
    ypos,
    truth: Mapping[str, Any],
    *,
    radius: float,
    real_kinds=REAL_KINDS,
    edge=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Label candidates by the truth: ``(label, kind)`` arrays.

    A candidate within ``radius`` of a real-kind entry is real (the nearest such kind).
    Otherwise it takes the kind of the nearest truth entry within ``radius`` (segments:
    distance to the segment), else ``edge`` where ``edge`` (bool per candidate) is set,
    else ``noise_peak``.

    Examples
    --------
    >>> truth = {"kind": ["transient", "cosmic_ray"], "x": [10.0, 50.0], "y": [10.0, 50.0]}
    >>> label, kind = label_candidates([10.5, 50, 90], [10, 49, 90], truth, radius=2)
    >>> label.tolist(), kind.tolist()
    ([1, 0, 0], ['transient', 'cosmic_ray', 'noise_peak'])
    """
    px = np.asarray(xpos, float).ravel()
    py = np.asarray(ypos, float).ravel()
    kinds = np.asarray(truth["kind"]).astype(str)
    tx = np.asarray(truth["x"], float)
    ty = np.asarray(truth["y"], float)
    length = np.asarray(truth.get("length", np.full(tx.size, np.nan)), float)
    angle = np.asarray(truth.get("angle", np.zeros(tx.size)), float)
    length = np.where(np.isfinite(length), length, 0.0)
    angle = np.where(np.isfinite(angle), angle, 0.0)
    label = np.zeros(px.size, np.int64)
    kind = np.full(px.size, "noise_peak", dtype="U24")
    if edge is not None:
        kind[np.asarray(edge, bool)] = "edge"
    if tx.size and px.size:
        d = _segment_distance(px, py, tx, ty, length, angle)
        real = np.isin(kinds, tuple(real_kinds))
        d_real = np.where(real[None, :], d, np.inf)
        near_real = d_real.min(axis=1) <= radius
        j_real = d_real.argmin(axis=1)
        j_any = d.argmin(axis=1)
        near_any = d.min(axis=1) <= radius
        kind[near_any] = kinds[j_any[near_any]]
        kind[near_real] = kinds[j_real[near_real]]
        label[near_real] = 1
    return label, kind


def match_details(xpos, ypos, truth: Mapping[str, Any], *, real_kinds=REAL_KINDS) -> dict:
    """Per candidate: ``truth_dist`` (distance to the nearest real-kind truth entry),
    ``truth_snr`` (that entry's absolute theoretical S/N of the change, NaN where the truth has
    no ``snr``) and ``artefact_dist`` (distance to the nearest other truth entry,
    segments by their nearest point); ``inf`` where there is none. Recorded as features
    so that the labelling rules (:func:`apply_label_rules`) can be applied to a set."""
    px = np.asarray(xpos, float).ravel()
    py = np.asarray(ypos, float).ravel()
    kinds = np.asarray(truth["kind"]).astype(str)
    tx = np.asarray(truth["x"], float)
    ty = np.asarray(truth["y"], float)
    out = {
        "truth_dist": np.full(px.size, np.inf),
        "truth_snr": np.full(px.size, np.nan),
        "artefact_dist": np.full(px.size, np.inf),
    }
    if not (tx.size and px.size):
        return out
    length = np.asarray(truth.get("length", np.full(tx.size, np.nan)), float)
    angle = np.asarray(truth.get("angle", np.zeros(tx.size)), float)
    length = np.where(np.isfinite(length), length, 0.0)
    angle = np.where(np.isfinite(angle), angle, 0.0)
    snr = np.abs(np.asarray(truth.get("snr", np.full(tx.size, np.nan)), float))
    d = _segment_distance(px, py, tx, ty, length, angle)
    real = np.isin(kinds, tuple(real_kinds))
    if real.any():
        dr = d[:, real]
        j = dr.argmin(axis=1)
        out["truth_dist"] = dr[np.arange(px.size), j]
        out["truth_snr"] = snr[real][j]
    if (~real).any():
        out["artefact_dist"] = d[:, ~real].min(axis=1)
    return out


#: Why a row is ambiguous (:func:`ambiguous_rows`); ``""``: not ambiguous.
AMBIGUOUS_REASONS = ("faint", "blended", "mover")


def ambiguous_rows(
    data: TrainingSet, *, threshold: float | None = None, match_radius: float | None = None
) -> np.ndarray:
    """Why each row's label is ambiguous (``""`` where it is not), shape (N,).

    The labelling rules (docs/classify.md "Labels"):

    ``faint``
        Matched to an injected real source whose true (theoretical) absolute S/N is below the
        detection ``threshold``: it was found only because noise pushed it up, and at
        that S/N it is not distinguishable from a noise peak.
    ``blended``
        Matched to a real source, but an artefact (cosmic ray, hot pixel, bad column,
        trail, ...) lies within ``match_radius`` too: the candidate may be either.
    ``mover``
        A moving object: a point (or short trail) that is astrophysical but absent from
        the reference; one triplet cannot tell it from a transient (a moving-object
        pipeline's job), so it is neither a training real nor a training bogus.

    Ambiguous rows are left out of training (``skyscene rb train``, unless
    ``--keep-ambiguous``) and reported separately by ``skyscene rb evaluate`` (never
    dropped silently). ``threshold`` and ``match_radius`` default to the set's maker
    configuration (``meta["config"]``; 5 and 3 px). Rows without the ``truth_snr`` /
    ``artefact_dist`` features (sets made before they were recorded, other simulators)
    are only judged by ``kind``.
    """
    config = data.meta.get("config", {}) if isinstance(data.meta, dict) else {}
    threshold = float(config.get("threshold", 5.0) if threshold is None else threshold)
    radius = float(config.get("match_radius", 3.0) if match_radius is None else match_radius)
    reason = np.full(len(data), "", dtype="U8")
    real = np.asarray(data.label) == 1
    f = data.features
    if "artefact_dist" in f:
        reason[real & (np.asarray(f["artefact_dist"], float) <= radius)] = "blended"
    if "truth_snr" in f:
        snr = np.asarray(f["truth_snr"], float)
        reason[real & np.isfinite(snr) & (snr < threshold)] = "faint"
    reason[np.asarray(data.kind).astype(str) == "mover"] = "mover"
    return reason


def make_training_set(
    config: TrainingSetConfig | None = None,
    *,
    rng=0,
    simulator: Callable[[TrainingSetConfig, np.random.Generator, int], SimulatedScene]
    | None = None,
    zogy_config=None,
    progress_bar: bool = False,
) -> TrainingSet:
    """Make a labelled training set with the search pipeline's own steps.

    Parameters
    ----------
    config : TrainingSetConfig, optional
    rng : int or numpy.random.Generator
        Seed: the same seed gives the same set.
    simulator : callable, optional
        ``simulator(config, rng, index) -> SimulatedScene``; default
        :func:`search_scene` (the search simulator; :func:`pair_scene` is the simpler
        ``simulate_pair`` one, whose condition ranges are those of ``config``).
    zogy_config : skyscene.diffim.ZogyConfig, optional
    progress_bar : bool
        A tqdm bar over the pairs.

    Returns
    -------
    TrainingSet
        Pairs whose subtraction fails are skipped and listed in ``meta["skipped"]``.
    """
    from skyscene.candidates import CandidateConfig, CutoutBits, find_candidates
    from skyscene.diffim import Zogy
    from skyscene.errors import SkysceneError, SkysceneWarning

    config = config or TrainingSetConfig()
    simulator = simulator or search_scene
    rng = np.random.default_rng(rng)
    zogy = Zogy(zogy_config) if zogy_config is not None else Zogy()
    cand_config = CandidateConfig(threshold=config.threshold, cutout_size=config.cutout_size)
    parts: list[dict[str, Any]] = []
    conditions: dict[str, dict] = {}
    skipped: list[dict] = []
    pairs = range(config.n_pairs)
    if progress_bar:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="training pairs", unit="pair")
    for index in pairs:
        scene = simulator(config, rng, index)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SkysceneWarning)
                result = zogy(scene.science, scene.reference)
                table = find_candidates(
                    result,
                    scene.science,
                    scene.reference,
                    config=cand_config,
                    pair_id=scene.group,
                )
        except SkysceneError as exc:
            log.warning("pair %s skipped: %s", scene.group, exc)
            skipped.append({"group": scene.group, "reason": str(exc)})
            continue
        conditions[scene.group] = dict(scene.conditions)
        if caught:  # recorded with the pair's conditions, not raised: the set keeps it
            conditions[scene.group]["warnings"] = [str(w.message) for w in caught]
            for w in caught:
                log.info("pair %s: %s", scene.group, w.message)
        if len(table) == 0:
            continue
        cut = table.cutouts
        if cut is None:  # pragma: no cover - cutouts=True above
            raise DataError(f"pair {scene.group}: no cutouts made")
        off = np.uint8(CutoutBits.OFF_IMAGE)
        edge = ((cut.science_mask & off) > 0).any(axis=(1, 2))
        label, kind = label_candidates(
            table["xpos"], table["ypos"], scene.truth, radius=config.match_radius, edge=edge
        )
        extra = match_details(table["xpos"], table["ypos"], scene.truth)
        parts.append(
            {
                "science": cut.science,
                "reference": cut.reference,
                "difference": cut.difference,
                "label": label,
                "kind": kind,
                "group": np.full(len(table), scene.group, dtype="U32"),
                "candid": np.asarray(table["candid"], np.int64),
                "features": {
                    **{k: np.asarray(table[k]) for k in FEATURES if k in table.names},
                    **extra,
                },
            }
        )
    size = config.cutout_size
    if not parts:
        empty = np.zeros((0, size, size), np.float32)
        return TrainingSet(
            science=empty, reference=empty, difference=empty,
            label=np.zeros(0, np.int64), kind=np.zeros(0, "U24"), group=np.zeros(0, "U32"),
            candid=np.zeros(0, np.int64),
            meta={"config": config.to_dict(), "conditions": conditions, "skipped": skipped},
        )  # fmt: skip
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "features"}
    names = [k for k in parts[0]["features"] if all(k in p["features"] for p in parts)]
    features = {k: np.concatenate([p["features"][k] for p in parts]) for k in names}
    return TrainingSet(
        science=cat["science"].astype(np.float32),
        reference=cat["reference"].astype(np.float32),
        difference=cat["difference"].astype(np.float32),
        label=cat["label"],
        kind=cat["kind"],
        group=cat["group"],
        candid=cat["candid"],
        features=features,
        meta={"config": config.to_dict(), "conditions": conditions, "skipped": skipped},
    )

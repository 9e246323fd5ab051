"""File-level ZOGY subtraction: read two exposures, subtract, write the FITS product."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from skyscene.diffim import ZogyResult

__all__ = [
    "SimulatedPairFiles",
    "SubtractionOutputs",
    "demo_stage",
    "simulate_pair_files",
    "subtract_files",
    "write_subtraction_plot",
    "write_zogy_product",
]

log = logging.getLogger(__name__)


def write_zogy_product(path, result, *, wcs=None, extra: dict | None = None) -> Path:
    """Write a :class:`~skyscene.diffim.ZogyResult` atomically.

    HDUs: primary (``FD``, ``FLUXRAT``, ``DX``, ``DY``, ``FS``, ``SIGSCI``, ``SIGREF``,
    ``CONVERG``, ``ALIGN`` and the effective configuration as JSON in ``ZOGYCFG``), ``DIFF`` (D), ``SCORR``, ``SCORE``, ``PSF`` (P_D), ``FLUX``, ``FLUXERR``
    (inf where flagged), ``MASK`` (bits of :class:`~skyscene.diffim.MaskBits`). Image
    HDUs carry the science WCS.
    """
    from astropy.io import fits

    from skyscene.io import atomic_path

    path = Path(path)
    primary = fits.PrimaryHDU()
    h = primary.header
    h["FD"] = (result.flux_zeropoint, "ZOGY flux zeropoint F_D (eq. 15)")
    h["FLUXRAT"] = (result.flux_ratio, "F_n/F_r, science counts per reference count")
    h["DX"] = (result.shift[0], "reference x shift applied, pixels")
    h["DY"] = (result.shift[1], "reference y shift applied, pixels")
    h["FS"] = (result.flux_normalization, "F_S flux normalisation (eq. 42)")
    h["SIGSCI"] = (result.sigma_science, "science background noise, counts")
    h["SIGREF"] = (result.sigma_reference, "reference background noise, counts")
    h["SIGASTX"] = (result.astrometric_sigma[0], "astrometric sigma x (eq. 30), pixels")
    h["SIGASTY"] = (result.astrometric_sigma[1], "astrometric sigma y (eq. 30), pixels")
    h["CONVERG"] = (bool(result.converged), "flux-ratio fit converged")
    h["ALIGN"] = (result.alignment, "how the reference was aligned")
    h["FLUXUNIT"] = ("reference counts", "unit of FLUX and FLUXERR")
    h["ZOGYCFG"] = (json.dumps(result.config, default=str), "effective ZogyConfig (JSON)")
    for key, value in (extra or {}).items():
        h[key] = value
    wcs_header = wcs.to_header(relax=True) if wcs is not None else fits.Header()

    def image(name, data, dtype=np.float32):
        hdu = fits.ImageHDU(np.asarray(data).astype(dtype), header=wcs_header.copy(), name=name)
        return hdu

    hdus = [
        primary,
        image("DIFF", result.difference),
        image("SCORR", result.score_corr),
        image("SCORE", result.score),
        fits.ImageHDU(np.asarray(result.difference_psf, np.float64), name="PSF"),
        image("FLUX", result.flux),
        image("FLUXERR", result.flux_err),
        image("MASK", result.mask, np.int16),
    ]
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


@dataclass(frozen=True, kw_only=True, eq=False)
class SubtractionOutputs:
    """What :func:`subtract_files` read, computed and wrote.

    Attributes
    ----------
    path : Path
        The ZOGY product FITS.
    result : ZogyResult
        The subtraction.
    science_path, reference_path : Path
        The inputs.
    science, reference : Exposure
        The exposures read from them (for :func:`skyscene.candidates.find_candidates`).
    plot_path : Path or None
        The five-panel PNG, when one was asked for.
    """

    path: Path
    result: ZogyResult
    science_path: Path
    reference_path: Path
    science: Any = None
    reference: Any = None
    plot_path: Path | None = None


def write_subtraction_plot(path, science, reference, result, *, title: str | None = None) -> Path:
    """Write the five-panel figure (:func:`~skyscene.plotting.diffim.plot_subtraction`)
    as PNG, atomically."""
    from skyscene.io import atomic_path
    from skyscene.plotting.diffim import plot_subtraction

    path = Path(path)
    fig = plot_subtraction(science, reference, result, title=title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    return path


def subtract_files(
    science_path, reference_path, out_path, *, config=None, plot=None
) -> SubtractionOutputs:
    """Read two exposure files, run :class:`~skyscene.diffim.Zogy`, write the product.

    Parameters
    ----------
    science_path, reference_path : path
        Exposure FITS files.
    out_path : path
        The product (written atomically, :func:`write_zogy_product`).
    config : ZogyConfig, optional
    plot : path, optional
        Also write the five-panel figure (science, reference, D, S_corr, flux) there.

    Returns
    -------
    SubtractionOutputs
    """
    from skyscene.diffim import Zogy
    from skyscene.io import read_exposure

    science = read_exposure(science_path, require_time=False)
    reference = read_exposure(reference_path, require_time=False)
    result = Zogy(config)(science, reference)
    path = write_zogy_product(out_path, result, wcs=science.wcs)
    plot_path = None
    if plot is not None:
        plot_path = write_subtraction_plot(
            plot,
            science,
            reference,
            result,
            title=f"ZOGY: {Path(science_path).name} - {Path(reference_path).name}",
        )
    log.info(
        "ZOGY %s - %s -> %s (flux ratio %.4f, shift %.3f %.3f)",
        science_path,
        reference_path,
        out_path,
        result.flux_ratio,
        *result.shift,
    )
    return SubtractionOutputs(
        path=path,
        result=result,
        science_path=Path(science_path),
        reference_path=Path(reference_path),
        science=science,
        reference=reference,
        plot_path=plot_path,
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class SimulatedPairFiles:
    """The files :func:`simulate_pair_files` wrote, and the pair itself.

    Attributes
    ----------
    science, reference : Path
        Exposure FITS files (with ``SATURATE``; a ``PSF`` HDU unless the PSF varies).
    transients : Path
        The truth table (CSV).
    pair : skyscene.datasets.pairs.SimulatedPair
    """

    science: Path
    reference: Path
    transients: Path
    pair: Any


def simulate_pair_files(out_dir, *, seed: int = 0, **kwargs) -> SimulatedPairFiles:
    """Simulate a pair and write ``science.fits``, ``reference.fits``, ``transients.csv``.

    ``kwargs`` go to :func:`~skyscene.datasets.pairs.simulate_pair`.
    """
    from astropy.io import fits

    from skyscene.datasets.pairs import simulate_pair
    from skyscene.io import write_exposure, write_table

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pair = simulate_pair(rng=seed, **kwargs)
    paths = {}
    for name, exposure in (("science", pair.science), ("reference", pair.reference)):
        header = fits.Header()
        header["SATURATE"] = exposure.meta["saturate"]
        psf = exposure.psf
        if hasattr(psf, "pixel_values") and not hasattr(psf, "image"):
            psf = psf.to_pixelized(size=41, oversampling=3)
        elif not hasattr(psf, "image"):
            psf = None  # a varying PSF is not written: it is estimated from stars
        exposure = exposure.replace(meta={**exposure.meta, "header": header}, psf=psf)
        paths[name] = write_exposure(out_dir / f"{name}.fits", exposure)
    transients = out_dir / "transients.csv"
    write_table(pair.transients, transients)
    return SimulatedPairFiles(
        science=Path(paths["science"]),
        reference=Path(paths["reference"]),
        transients=transients,
        pair=pair,
    )


def demo_stage(out_dir, *, progress: bool = True) -> str:
    """Demo: simulate a 1024² pair, subtract with ZOGY, write the product and a picture."""
    from skyscene.datasets.pairs import simulate_pair
    from skyscene.diffim import Zogy
    from skyscene.plotting.diffim import plot_subtraction

    out = Path(out_dir) / "diffim"
    out.mkdir(parents=True, exist_ok=True)
    pair = simulate_pair(shape=(1024, 1024), rng=2024, n_transients=20, transient_snr=10.0)
    result = Zogy()(pair.science, pair.reference)
    product = write_zogy_product(out / "difference.fits", result, wcs=pair.science.wcs)
    measured = result.measure(pair.transients["x"], pair.transients["y"])
    good = measured["mask"] == 0
    ratio = (
        float(np.median(measured["score_corr"][good] / pair.transients["snr"][good]))
        if good.any()
        else float("nan")
    )
    detected = int(np.sum(measured["score_corr"][good] >= 5.0))
    fig = plot_subtraction(
        pair.science,
        pair.reference,
        result,
        transients=pair.transients,
        title="ZOGY subtraction (simulated pair)",
    )
    png = out / "subtraction.png"
    fig.savefig(png, dpi=80)
    return (
        f"diffim: ZOGY product {product}, picture {png}\n"
        f"  20 transients of theoretical S/N 10: median S_corr / expected = {ratio:.3f}, "
        f"{detected}/{int(good.sum())} unflagged above 5 sigma; flux ratio {result.flux_ratio:.4f} "
        f"(true {pair.flux_ratio})"
    )

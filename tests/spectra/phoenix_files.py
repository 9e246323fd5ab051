"""PHOENIX-ACES files written to the format's specification, for the reader tests."""

import numpy as np
from astropy.io import fits

from skyscene.spectra import PhoenixACESReader

TEFFS = (4000, 4100)
LOGGS = (4.5, 5.0)
FEHS = (-0.5, 0.0)


def phoenix_flux(wave, teff, logg, feh):
    x = 1.4388e8 / (wave * teff)
    line = 1 - 0.5 * (1 + feh) * np.exp(-0.5 * ((wave - 5050.0) / (0.05 * logg)) ** 2)
    return (1e15 / np.expm1(x) * line).astype(np.float32)


def write_phoenix_library(root, *, header_teff_offset=0.0):
    wave = 5000.0 * np.exp(np.arange(4000) / 500000.0)  # R = 500 000 sampling, vacuum Å
    fits.PrimaryHDU(wave).writeto(root / "WAVE_PHOENIX-ACES-AGSS-COND-2011.fits")
    for feh in FEHS:
        folder = root / ("Z-0.0" if feh == 0 else f"Z{feh:+.1f}")
        folder.mkdir(exist_ok=True)
        for teff in TEFFS:
            for logg in LOGGS:
                hdu = fits.PrimaryHDU(phoenix_flux(wave, teff, logg, feh))
                hdu.header["PHXTEFF"] = teff + header_teff_offset
                hdu.header["PHXLOGG"] = logg
                hdu.header["PHXM_H"] = feh
                hdu.header["PHXALPHA"] = 0.0
                hdu.header["BUNIT"] = "erg/s/cm^2/cm"
                hdu.writeto(folder / PhoenixACESReader.filename(teff, logg, feh))
    # an alpha-enhanced file (skipped by default) and an unrelated file
    fits.PrimaryHDU(phoenix_flux(wave, 4000, 4.5, 0.0)).writeto(
        root / "Z-0.0" / "lte04000-4.50-0.0.Alpha=+0.20.PHOENIX-ACES-AGSS-COND-2011-HiRes.fits"
    )
    (root / "README.txt").write_text("not a spectrum")
    return wave

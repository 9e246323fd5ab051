"""Barycentric times: BMJD(TDB) at mid-exposure, without downloading IERS tables."""

from __future__ import annotations

import numpy as np

__all__ = ["bmjd_tdb", "location_from_header"]


def _no_download() -> None:
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None


def location_from_header(header):
    """Observatory ``EarthLocation`` from ``OBSGEO-X/Y/Z`` (m) or ``SITELAT``/``SITELONG``; else None."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    if header is None:
        return None
    if all(k in header for k in ("OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z")):
        return EarthLocation.from_geocentric(
            header["OBSGEO-X"], header["OBSGEO-Y"], header["OBSGEO-Z"], unit=u.m
        )
    for lat_key, lon_key in (
        ("SITELAT", "SITELONG"),
        ("LATITUDE", "LONGITUD"),
        ("OBS-LAT", "OBS-LONG"),
    ):
        if lat_key in header and lon_key in header:
            try:
                return EarthLocation.from_geodetic(
                    float(header[lon_key]) * u.deg, float(header[lat_key]) * u.deg
                )
            except (TypeError, ValueError):
                return None
    return None


def bmjd_tdb(times, ra: float, dec: float, *, location=None) -> np.ndarray:
    """Barycentric MJD in TDB for ``times`` (astropy Time, UTC mid-exposure).

    Parameters
    ----------
    times : astropy.time.Time
    ra, dec : float
        Coordinates of the target (or field), degrees (ICRS).
    location : astropy EarthLocation, optional
        Observatory; the geocentre when None (an error of up to ~21 ms).

    Returns
    -------
    ndarray of float
        ``(t.tdb + light_travel_time).mjd``.
    """
    from astropy import units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time

    _no_download()
    if location is None:
        location = EarthLocation.from_geocentric(0.0, 0.0, 0.0, unit=u.m)
    t = Time(times, location=location)
    coord = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    ltt = t.light_travel_time(coord, kind="barycentric")
    return np.atleast_1d((t.tdb + ltt).mjd).astype(float)

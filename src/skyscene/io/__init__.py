"""Containers and file formats: :class:`Exposure`, :class:`MasterFrame`, FITS, headers, tables."""

from skyscene.io._atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from skyscene.io.calset import (
    calibration_set_from_directory,
    read_calibration_set,
    write_calibration_set,
)
from skyscene.io.ccddata import exposure_from_ccddata, exposure_to_ccddata
from skyscene.io.exposure import Exposure
from skyscene.io.fits import (
    NONPHYSICAL_SCALE,
    bunit,
    exposure_header,
    is_fits,
    nonphysical_mask,
    open_fits,
    read_exposure,
    read_header,
    write_exposure,
)
from skyscene.io.headers import (
    PROFILES,
    InstrumentProfile,
    ObservationInfo,
    detect_profile,
    get_profile,
    parse_header,
    register_profile,
)
from skyscene.io.masters import MASTER_KINDS, MASTER_UNITS, MasterFrame, read_master, write_master
from skyscene.io.stamps import STAMP_COMPRESSLEVEL, FitsStamp, decode_fits_stamp, encode_fits_stamp
from skyscene.io.tables import TABLE_FORMATS, jsonable_meta, write_table

__all__ = [
    "MASTER_KINDS",
    "MASTER_UNITS",
    "NONPHYSICAL_SCALE",
    "PROFILES",
    "STAMP_COMPRESSLEVEL",
    "TABLE_FORMATS",
    "Exposure",
    "FitsStamp",
    "InstrumentProfile",
    "MasterFrame",
    "ObservationInfo",
    "atomic_path",
    "atomic_write_text",
    "bunit",
    "calibration_set_from_directory",
    "decode_fits_stamp",
    "detect_profile",
    "encode_fits_stamp",
    "exposure_from_ccddata",
    "exposure_header",
    "exposure_to_ccddata",
    "get_profile",
    "is_fits",
    "jsonable_meta",
    "nonphysical_mask",
    "open_fits",
    "parse_header",
    "read_calibration_set",
    "read_exposure",
    "read_header",
    "read_master",
    "register_profile",
    "remove_stale_temporaries",
    "write_calibration_set",
    "write_exposure",
    "write_master",
    "write_table",
]

"""CCD calibration: master bias/dark/flat, bad pixels, cosmic rays, application.

The optional first step of a reduction. Typical use::

    from skyscene.calibration import CalibrationSet
    calibration = CalibrationSet.from_directory("calib/")
    calibrated = calibration.apply(read_exposure("raw/sci_001.fits"))

All pixel values are in ADU; read noise is in ADU; gain in e-/ADU.
"""

from skyscene.calibration.calset import FRAME_TYPE_KEYS, CalibrationSet, classify_frame
from skyscene.calibration.combine import CombineConfig, CombinedFrame, combine_frames
from skyscene.calibration.cosmics import mask_cosmic_rays
from skyscene.calibration.masters import (
    bad_pixel_mask,
    make_master_bias,
    make_master_dark,
    make_master_flat,
)
from skyscene.calibration.process import calibrate

# The container and its FITS files live in skyscene.io (algorithms do no file I/O);
# re-exported so that ``from skyscene.calibration import read_master`` keeps working
# (documented once, in skyscene.io: not in __all__ here).
from skyscene.io.masters import MASTER_KINDS as MASTER_KINDS
from skyscene.io.masters import MasterFrame as MasterFrame
from skyscene.io.masters import read_master as read_master
from skyscene.io.masters import write_master as write_master

__all__ = [
    "FRAME_TYPE_KEYS",
    "CalibrationSet",
    "CombineConfig",
    "CombinedFrame",
    "bad_pixel_mask",
    "calibrate",
    "classify_frame",
    "combine_frames",
    "make_master_bias",
    "make_master_dark",
    "make_master_flat",
    "mask_cosmic_rays",
]

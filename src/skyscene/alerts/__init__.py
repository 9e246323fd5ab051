"""Avro alert packets: a documented subset of the ZTF alert schema 4.02 with gzip-FITS cutouts.

The schema ships with the package (``skyscene/alerts/schema/*.avsc``; the top record is
:func:`schema_path`), so any Avro reader can read what skyscene writes. See
``docs/alerts.md`` for the fields.

Examples
--------
>>> import numpy as np
>>> from skyscene.alerts import make_alert
>>> cand = {"candid": 1, "jd": 2461000.5, "fid": 2, "ra": 150.0, "dec": 2.0,
...         "isdiffpos": "t", "magpsf": 19.5, "sigmapsf": 0.1}
>>> alert = make_alert(cand, object_id="SKY26aaaaaab", difference=np.zeros((63, 63)))
>>> alert.difference.shape, alert.candidate["fid"], alert.candidate["xpos"]
((63, 63), 2, None)
"""

from skyscene.alerts._schema import (
    CANDIDATE_FIELDS,
    FEATURE_FIELDS,
    PRV_CANDIDATE_FIELDS,
    SCHEMA_VERSION,
    load_schema,
    schema_path,
)
from skyscene.alerts._stamps import decode_stamp, encode_stamp
from skyscene.alerts.core import (
    CUTOUT_FIELDS,
    Alert,
    AlertConfig,
    AlertFiles,
    Stamp,
    alerts_from_table,
    iter_alerts,
    make_alert,
    read_alerts,
    write_alert_file,
    write_alerts,
)

__all__ = [
    "CANDIDATE_FIELDS",
    "CUTOUT_FIELDS",
    "FEATURE_FIELDS",
    "PRV_CANDIDATE_FIELDS",
    "SCHEMA_VERSION",
    "Alert",
    "AlertConfig",
    "AlertFiles",
    "Stamp",
    "alerts_from_table",
    "decode_stamp",
    "encode_stamp",
    "iter_alerts",
    "load_schema",
    "make_alert",
    "read_alerts",
    "schema_path",
    "write_alert_file",
    "write_alerts",
]

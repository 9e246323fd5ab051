"""GalSim-style invariant helpers: what crosses a process boundary pickles and round-trips.

(A uniquely named module; imported by the scene, align and datasets invariant tests.)
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np


def assert_same(a, b, where: str = "value") -> None:
    """Recursive equality: dataclass fields, arrays (NaN equal NaN), containers, WCS, Time."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif type(a).__name__ == "WCS":
        assert a.to_header_string() == b.to_header_string(), where
    elif type(a).__name__ == "Time":
        assert a.scale == b.scale and a.format == b.format, where
        assert a.jd1 == b.jd1 and a.jd2 == b.jd2, where
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert_same(vars(a), vars(b), f"{where}<{type(a).__name__}>")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def roundtrip(obj):
    """``pickle`` round trip at the highest protocol (what Dask workers receive)."""
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def assert_roundtrips(obj) -> None:
    back = roundtrip(obj)
    assert back is not obj
    assert_same(obj, back)
    if dataclasses.is_dataclass(obj) and type(obj).__eq__ is not object.__eq__:
        assert back == obj  # the class's own equality, where it defines one

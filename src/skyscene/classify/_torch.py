"""Lazy access to PyTorch (the optional extra ``skyscene[rb]``) and deterministic set-up."""

from __future__ import annotations

from typing import Any

__all__ = ["deterministic", "torch"]


def torch() -> Any:
    """The ``torch`` module, or a :class:`~skyscene.errors.MissingDependencyError` naming
    the extra ``rb``."""
    from skyscene.errors import require

    return require("torch", "rb")


def deterministic(seed: int, n_threads: int | None) -> Any:
    """Seed torch, switch on deterministic algorithms, fix the thread count; return torch.

    Same seed and same ``n_threads`` give bit-identical training on the CPU.
    """
    t = torch()
    t.manual_seed(int(seed))
    t.use_deterministic_algorithms(True)
    if n_threads is not None:
        t.set_num_threads(int(n_threads))
    return t

"""Shared fixtures: where the real data lives, and how numbers are compared across implementations.

Comparison helpers are session-scoped fixtures (not an importable module) because test folders have
no ``__init__.py`` and pytest collects them rootdir-relative; session scope also keeps them usable
inside hypothesis tests."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

#: relative tolerance per dtype for "the same computation done by two implementations"
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data sets: ``$RNNKIT_DATA``, or ``<repo>/../shared/data``."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    path = Path(os.environ.get("RNNKIT_DATA", default))
    if not path.is_dir():
        pytest.fail(f"data directory {path} not found; set RNNKIT_DATA to the shared data folder")
    return path


def _as_double(v) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach().double()
    return torch.as_tensor(np.asarray(v, dtype=np.float64))


def rel_diff(actual, expected) -> float:
    """``max|a - b| / max(1, max|b|)``: an absolute error for small numbers, relative for large."""
    a, b = _as_double(actual), _as_double(expected)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {tuple(a.shape)} vs expected {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


@pytest.fixture(scope="session")
def assert_close():
    """``assert_close(actual, expected, what, tol=None)``: fail naming ``what`` and the largest
    relative difference. ``tol`` defaults to `TOLERANCE` of ``expected``'s dtype."""
    def check(actual, expected, what: str, tol: float | None = None) -> None:
        if tol is None:
            dtype = expected.dtype if isinstance(expected, torch.Tensor) else torch.float64
            tol = TOLERANCE.get(dtype, 1e-5)
        if actual is None or expected is None:
            raise AssertionError(f"{what}: one side is None (actual={actual is None}, "
                                 f"expected={expected is None})")
        d = rel_diff(actual, expected)
        if not d <= tol:  # also catches NaN
            raise AssertionError(f"{what}: largest relative difference {d:.3e} > tolerance {tol:.0e}")
    return check


@pytest.fixture(scope="session")
def assert_grads_close(assert_close):
    """``assert_grads_close(ours_module, theirs_module, tol=None, what="")``: every named
    parameter's gradient agrees (names must match one to one)."""
    def check(ours, theirs, tol: float | None = None, what: str = "") -> None:
        po, pt = dict(ours.named_parameters()), dict(theirs.named_parameters())
        assert list(po) == list(pt), f"{what}parameter names differ: {list(po)} vs {list(pt)}"
        for name in pt:
            assert pt[name].grad is not None, f"{what}reference has no gradient for {name}"
            assert po[name].grad is not None, f"{what}no gradient for parameter {name}"
            assert_close(po[name].grad, pt[name].grad, f"{what}gradient of {name}", tol)
    return check

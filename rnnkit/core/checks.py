"""Shape and value checks at the start of `forward`, shared by every recurrent module.

Errors name the argument, the value received and what was expected (STYLE.md, habit 5).
A wrong shape raises `ShapeError` and a dtype mismatch `DtypeError`: each derives from the type
rnnkit raised before and from the one ``torch.nn`` raises for the same mistake, so code written for
either keeps catching it (``except RuntimeError`` around a ``torch.nn.LSTM`` call, say)."""
from __future__ import annotations

import torch
from torch import Tensor


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong shape: a ``ValueError`` (rnnkit's rule, STYLE.md) that is also the
    ``RuntimeError`` ``torch.nn``'s recurrent modules raise for it."""


class DtypeError(TypeError, ValueError):
    """An input whose dtype does not match the parameters': a ``TypeError`` (rnnkit's rule) that is
    also the ``ValueError`` ``torch.nn.RNN/LSTM/GRU`` raise for it."""


def check_input(owner: str, x: object, input_size: int, batch_first: bool, check_finite: bool) -> None:
    layout = "(B, T, I)" if batch_first else "(T, B, I)"
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected input to be a torch.Tensor or PackedSequence of shape "
                        f"{layout}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{owner}: expected a floating-point input {layout}, got dtype {x.dtype}; "
                        f"token ids need an embedding first (torch.nn.Embedding), or call .float()")
    if x.dim() not in (2, 3):
        raise ShapeError(f"{owner}: expected input with 3 dimensions {layout} (or 2 for one "
                         f"unbatched sequence), got shape {tuple(x.shape)}")
    if x.shape[-1] != input_size:
        want = layout.replace("I)", f"I={input_size})")
        raise ShapeError(f"{owner}: expected input of shape {want}, got {tuple(x.shape)}")
    if check_finite and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ValueError(f"{owner}: input contains NaN or inf (first at index {tuple(bad)}); "
                         f"check_finite=True refuses non-finite input")


def check_lengths(owner: str, lengths: object, batch: int, steps: int) -> Tensor:
    """Validate ``lengths`` (B,) and return it as an int64 CPU tensor."""
    if isinstance(lengths, (list, tuple)):
        lengths = torch.as_tensor(lengths)
    if not isinstance(lengths, Tensor):
        raise TypeError(f"{owner}: lengths must be a 1-D tensor or list of ints, "
                        f"got {type(lengths).__name__}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"{owner}: lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ShapeError(f"{owner}: lengths must have shape (B={batch},), got {tuple(lengths.shape)}")
    lengths = lengths.to("cpu", torch.int64)
    if batch and int(lengths.min()) < 1:
        raise ValueError(f"{owner}: every length must be >= 1, got {int(lengths.min())} "
                         f"(at batch index {int(lengths.argmin())})")
    if batch and int(lengths.max()) > steps:
        raise ValueError(f"{owner}: lengths must not exceed the time axis T={steps}, got "
                         f"{int(lengths.max())} (at batch index {int(lengths.argmax())})")
    return lengths


def check_state(owner: str, name: str, state: object, shape: tuple[int, ...], x: Tensor) -> None:
    if not isinstance(state, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor of shape {shape}, "
                        f"got {type(state).__name__}")
    if tuple(state.shape) != tuple(shape):
        raise ShapeError(f"{owner}: expected {name} of shape {tuple(shape)} (L*D, B, H), "
                         f"got {tuple(state.shape)}")
    if state.dtype != x.dtype:
        raise DtypeError(f"{owner}: {name} has dtype {state.dtype} but the input has {x.dtype}")


def check_dtype(owner: str, x: Tensor, param: Tensor) -> None:
    if x.dtype != param.dtype:
        raise DtypeError(f"{owner}: input dtype {x.dtype} does not match the parameters' dtype "
                        f"{param.dtype}; convert one of them (.to(dtype))")


def check_masked_output(owner: str, masked_output: object) -> None:
    if masked_output not in ("zero", "hold"):
        raise ValueError(f"{owner}: masked_output must be 'zero' or 'hold', got {masked_output!r}")


def check_mask(owner: str, mask: object, batch: int, steps: int) -> Tensor:
    if not isinstance(mask, Tensor) or mask.shape != (batch, steps):
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ShapeError(f"{owner}: mask must be a tensor of shape (B={batch}, T={steps}), got {got}")
    return mask.to(torch.bool)

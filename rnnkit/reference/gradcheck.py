"""Finite-difference gradient checking.

A hand-written backward pass is only trustworthy once it has been compared with the definition
of the derivative.  For every entry θ_j of every array we evaluate the loss twice::

    dL/dθ_j ≈ (L(θ + ε e_j) - L(θ - ε e_j)) / (2ε)        (central difference, error O(ε²))

and compare with the analytic gradient.  In float64 with ε = 1e-6 the truncation error
(~ε²) and the rounding error (~1e-16·|L|/ε) are both around 1e-10, so a correct backward pass
agrees to ~1e-8 relative, while a wrong one is typically off by 1e-2 or more.

Quick use (``python -m rnnkit.reference`` runs it for every cell)::

    loss_fn, grad_fn, theta = rnn_objective(x, params, mode="lstm", hidden_size=4)
    worst_name, worst_err, errors = check_gradients(loss_fn, theta, grads=grad_fn(theta)[1])
"""

import numpy as np

from .layers import rnn_backward, rnn_forward

__all__ = ["GradientCheckError", "relative_error", "numerical_gradient", "gradcheck",
           "check_gradients", "format_report", "rnn_objective", "demo"]


class GradientCheckError(AssertionError):
    """Raised by :func:`check_gradients` when some gradient is off by more than the tolerance."""


def _loss_value(f, params):
    out = f(params)
    return float(out[0] if isinstance(out, tuple) else out)


def relative_error(analytic, numeric):
    """max_j |a_j - n_j| / max(max_j |a_j|, max_j |n_j|): the worst error, relative to the size
    of that array's gradient (0.0 when both are exactly zero).

    Scaling by the whole array's gradient, not entry by entry, keeps entries whose true gradient
    is nearly zero (where finite differences return pure rounding noise) from hiding real bugs
    behind false alarms.
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic: expected shape {n.shape} (the parameter's shape), got {a.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.abs(a).max(), np.abs(n).max())
    return 0.0 if scale == 0.0 else float(np.abs(a - n).max() / scale)


def numerical_gradient(f, params, name, eps=1e-6):
    """Central-difference gradient of the scalar ``f(params)`` with respect to ``params[name]``.

    ``f`` may return the loss or a (loss, grads) tuple.  ``params[name]`` is perturbed in place
    one entry at a time and restored exactly afterwards.
    """
    x = params[name]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        j = it.multi_index
        old = x[j]
        x[j] = old + eps
        f_plus = _loss_value(f, params)
        x[j] = old - eps
        f_minus = _loss_value(f, params)
        x[j] = old                                # restore the exact old value
        grad[j] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def gradcheck(f, params, eps=1e-6, *, grads=None, names=None):
    """Compare analytic and finite-difference gradients of a scalar function.

    f: callable taking a dict like ``params`` and returning the loss, or (loss, grads) where
        grads is a dict of arrays shaped like ``params``.
    params: dict name -> float array (parameters and inputs alike, e.g. "x", "h0").  None values
        are skipped.  The caller's arrays are not modified (the check works on copies).
    grads: the analytic gradients; if None they are taken from ``f(params)[1]``.  Passing them
        lets ``f`` return the loss alone, which halves the cost of the finite differences.
    names: the keys to check (default: every key of ``params`` with a non-None value).
    Returns dict name -> :func:`relative_error` (analytic vs numeric), in the order checked.
    """
    if not isinstance(params, dict):
        raise ValueError(f"params: expected a dict of arrays, got {type(params).__name__}")
    work = {k: None if v is None else np.array(v, dtype=np.float64, copy=True) for k, v in params.items()}
    if grads is None:
        out = f(work)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise ValueError("f: expected f(params) to return (loss, grads) when grads is not given, "
                             f"got {type(out).__name__}")
        grads = out[1]
    if names is None:
        names = [k for k, v in work.items() if v is not None]
    errors = {}
    for name in names:
        if name not in work or work[name] is None:
            raise ValueError(f"names: {name!r} is not an array in params (keys: {sorted(work)})")
        if name not in grads:
            raise ValueError(f"grads: missing the analytic gradient for {name!r}")
        errors[name] = relative_error(grads[name], numerical_gradient(f, work, name, eps))
    return errors


def format_report(errors, tol=None):
    """A table of the relative errors, worst first, flagging those above ``tol``."""
    lines = []
    for name, err in sorted(errors.items(), key=lambda kv: -kv[1]):
        flag = "  <-- FAIL" if tol is not None and err > tol else ""
        lines.append(f"  {name:<24} {err:.3e}{flag}")
    return "\n".join(lines)


def check_gradients(f, params, eps=1e-6, tol=1e-6, *, grads=None, names=None):
    """Run :func:`gradcheck` and insist that every relative error is <= ``tol``.

    Returns (worst_name, worst_error, errors).  Raises :class:`GradientCheckError` (an
    AssertionError, so pytest shows it as a failure) naming the worst array otherwise.
    """
    errors = gradcheck(f, params, eps, grads=grads, names=names)
    if not errors:
        return None, 0.0, errors
    worst = max(errors, key=errors.get)
    if not errors[worst] <= tol:                  # also catches NaN
        raise GradientCheckError(f"gradient check failed: worst is {worst!r} with relative error "
                                 f"{errors[worst]:.3e} > tol={tol:.1e}\n{format_report(errors, tol)}")
    return worst, errors[worst], errors


def rnn_objective(x, params, *, h0=None, c0=None, seed=0, **config):
    """A scalar test loss of the whole network, ready for :func:`gradcheck`.

    L = Σ out ⊙ R_out + Σ h_n ⊙ R_h (+ Σ c_n ⊙ R_c): a fixed random linear function of every
    result, so every output entry receives its own nonzero gradient.  ``config`` holds the other
    keyword arguments of :func:`rnn_forward` (mode, hidden_size, lengths, ...).

    Returns (loss_fn, grad_fn, theta): theta is a dict of params plus "x", "h0" (and "c0" for the
    LSTM; zeros where not given); loss_fn(theta) -> L; grad_fn(theta) -> (L, grads).
    """
    is_lstm = config.get("mode") == "lstm"
    theta = dict(params)
    theta["x"] = x
    out, h_n, c_n, _ = rnn_forward(x, params, h0=h0, c0=c0, **config)
    theta["h0"] = np.zeros_like(h_n) if h0 is None else h0
    if is_lstm:
        theta["c0"] = np.zeros_like(c_n) if c0 is None else c0
    rng = np.random.default_rng(seed)
    R_out, R_h = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    R_c = rng.standard_normal(c_n.shape) if is_lstm else None

    def _run(th):
        p = {k: v for k, v in th.items() if k not in ("x", "h0", "c0")}
        out, h_n, c_n, cache = rnn_forward(th["x"], p, h0=th["h0"], c0=th.get("c0"), **config)
        loss = np.sum(out * R_out) + np.sum(h_n * R_h) + (np.sum(c_n * R_c) if is_lstm else 0.0)
        return float(loss), cache

    def loss_fn(th):
        return _run(th)[0]

    def grad_fn(th):
        loss, cache = _run(th)
        return loss, rnn_backward(R_out, R_h, R_c, cache)   # dL/d(result) is just its R

    return loss_fn, grad_fn, theta


def demo():
    """Check every cell on a small stacked, bidirectional, variable-length network and print
    the worst relative error of each (``python -m rnnkit.reference``)."""
    from .layers import init_params
    T, B, I, H, L = 5, 3, 3, 4, 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    lengths = np.array([5, 2, 4])
    cases = [("rnn", dict(nonlinearity="tanh")), ("rnn", dict(nonlinearity="relu")),
             ("lstm", {}), ("lstm", dict(proj_size=2)),
             ("gru", dict(reset_after=True)), ("gru", dict(reset_after=False))]
    for mode, extra in cases:
        params = init_params(mode, I, H, num_layers=L, bidirectional=True,
                             proj_size=extra.get("proj_size", 0), seed=1)
        loss_fn, grad_fn, theta = rnn_objective(x, params, mode=mode, hidden_size=H, num_layers=L,
                                                bidirectional=True, lengths=lengths, **extra)
        worst, err, _ = check_gradients(loss_fn, theta, grads=grad_fn(theta)[1])
        print(f"{mode:<5} {str(extra):<28} worst {worst:<22} {err:.2e}")


"""The NumPy reference's hand-written backward pass against central finite differences."""

import numpy as np
import pytest

from rnnkit.reference import (GradientCheckError, check_gradients, gradcheck, init_params,
                              numerical_gradient, relative_error, rnn_objective)

TOL = 1e-6

# (mode, extra rnn_forward kwargs) for every cell variant
CASES = [
    ("rnn", dict(nonlinearity="tanh")),
    ("rnn", dict(nonlinearity="relu")),
    ("lstm", dict()),
    ("lstm", dict(proj_size=2)),
    ("gru", dict(reset_after=True)),
    ("gru", dict(reset_after=False)),
]
IDS = ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru_reset_after", "gru_reset_before"]


def _objective(mode, extra, *, T=4, B=3, I=3, H=4, L=2, bidirectional=True, bias=True,
               lengths=(4, 1, 3), given_states=True, seed=0):
    rng = np.random.default_rng(seed)
    proj = extra.get("proj_size", 0)
    D = 2 if bidirectional else 1
    H_out = proj or H
    params = init_params(mode, I, H, num_layers=L, bidirectional=bidirectional, proj_size=proj,
                         bias=bias, seed=seed + 1)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, H_out)) * 0.5 if given_states else None
    c0 = rng.standard_normal((L * D, B, H)) * 0.5 if given_states and mode == "lstm" else None
    return rnn_objective(x, params, h0=h0, c0=c0, seed=seed + 2, mode=mode, hidden_size=H,
                         num_layers=L, bidirectional=bidirectional, bias=bias,
                         lengths=None if lengths is None else np.array(lengths), **extra)


@pytest.mark.parametrize("mode,extra", CASES, ids=IDS)
def test_backward_matches_finite_differences(mode, extra):
    """2 layers, bidirectional, variable lengths, given h0/c0: every parameter and input."""
    loss_fn, grad_fn, theta = _objective(mode, extra)
    _, grads = grad_fn(theta)
    assert set(grads) == set(theta)
    worst, err, errors = check_gradients(loss_fn, theta, grads=grads, tol=TOL)
    assert set(errors) == set(theta)
    assert err < TOL


@pytest.mark.parametrize("mode,extra", [CASES[0], CASES[3], CASES[5]], ids=["rnn", "lstm_proj", "gru_rb"])
def test_backward_no_bias_no_lengths_unidirectional(mode, extra):
    loss_fn, grad_fn, theta = _objective(mode, extra, L=2, bidirectional=False, bias=False,
                                         lengths=None, given_states=False, T=3)
    assert not any(k.startswith("bias") for k in theta)
    check_gradients(loss_fn, theta, grads=grad_fn(theta)[1], tol=TOL)


def test_padded_inputs_get_zero_gradient():
    loss_fn, grad_fn, theta = _objective("lstm", {}, lengths=(4, 1, 3))
    dx = grad_fn(theta)[1]["x"]
    assert np.all(dx[1:, 1] == 0.0) and np.all(dx[3:, 2] == 0.0)
    assert np.all(np.abs(dx[:1, 1]) > 0)


def test_gradcheck_accepts_loss_and_grads_tuple():
    _, grad_fn, theta = _objective("gru", {}, L=1, bidirectional=False, T=2, lengths=(2, 1, 2))
    errors = gradcheck(grad_fn, theta, names=["weight_hh_l0", "x"])
    assert list(errors) == ["weight_hh_l0", "x"] and max(errors.values()) < TOL


def test_check_gradients_names_the_broken_parameter():
    loss_fn, grad_fn, theta = _objective("rnn", {}, L=1, bidirectional=False, T=2, lengths=(2, 1, 2))
    _, grads = grad_fn(theta)
    grads = dict(grads)
    grads["bias_hh_l0"] = grads["bias_hh_l0"] * 1.01      # a 1% bug
    with pytest.raises(GradientCheckError, match="'bias_hh_l0'"):
        check_gradients(loss_fn, theta, grads=grads)


def test_gradcheck_does_not_modify_params():
    loss_fn, grad_fn, theta = _objective("rnn", {}, L=1, bidirectional=False, T=2, lengths=(2, 1, 2))
    before = {k: v.copy() for k, v in theta.items()}
    gradcheck(loss_fn, theta, grads=grad_fn(theta)[1])
    assert all(np.array_equal(before[k], theta[k]) for k in theta)


def test_numerical_gradient_of_a_known_function():
    A = np.arange(6.0).reshape(2, 3)
    params = {"w": np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.25]])}
    g = numerical_gradient(lambda p: float(np.sum(A * p["w"] ** 2)), params, "w")
    np.testing.assert_allclose(g, 2 * A * params["w"], rtol=1e-8, atol=1e-8)


def test_relative_error():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 2.2)
    with pytest.raises(ValueError, match="analytic"):
        relative_error(np.zeros(2), np.zeros(3))

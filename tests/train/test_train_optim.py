"""Learning-rate schedules against PyTorch's own schedulers; parameter groups for weight decay."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.train.config import TrainConfig
from rnnkit.train.optim import Schedule, build_optimizer, clip_grad_norm, parameter_groups


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def lrs_of(sched: Schedule, steps: int) -> list[float]:
    out = []
    for s in range(steps):
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.set(s + 1)
    return out


def test_cosine_equals_torch_cosine_annealing():
    cfg = TrainConfig(optimizer="sgd", lr=0.5, schedule="cosine", final_lr=0.1, steps=20)
    ours = lrs_of(Schedule(build_optimizer(model(), cfg), cfg, 20), 20)
    opt = torch.optim.SGD(model().parameters(), lr=0.5)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.05)
    theirs = []
    for _ in range(20):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_warmup_is_linear_then_constant():
    cfg = TrainConfig(optimizer="sgd", lr=1.0, schedule="constant", warmup=4, steps=10)
    assert lrs_of(Schedule(build_optimizer(model(), cfg), cfg, 10), 6) == [0.25, 0.5, 0.75, 1, 1, 1]


def test_plateau_equals_torch_reduce_on_plateau():
    losses = [5.0, 4.0, 4.0, 4.1, 3.9, 3.9, 3.9, 3.95, 3.0, 3.0, 3.0]
    cfg = TrainConfig(optimizer="sgd", lr=1.0, schedule="plateau", plateau_factor=0.5,
                      plateau_patience=1, steps=10)
    sched = Schedule(build_optimizer(model(), cfg), cfg, 10)
    opt = torch.optim.SGD(model().parameters(), lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=1e-4)
    for v in losses:
        sched.observe(v)
        sched.set(1)
        ref.step(v)
        assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    restored = Schedule(build_optimizer(model(), cfg), cfg, 10)
    restored.load_state_dict(sched.state_dict())
    assert restored.factor_at(3) == sched.factor_at(3)


def test_weight_decay_skips_biases_and_counts_tied_weights_once():
    m = model()
    m[1].weight = nn.Parameter(torch.zeros(2, 4))
    m.add_module("tied", nn.Linear(4, 2, bias=False))
    m.tied.weight = m[1].weight
    decay, plain = parameter_groups(m, 0.1)
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 3), (2, 4)]
    assert [tuple(p.shape) for p in plain["params"]] == [(4,), (2,)]
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0


@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e3])   # clipped, borderline, untouched
def test_clip_grad_norm_equals_torch(max_norm):
    torch.manual_seed(0)
    ours, ref = [torch.nn.Linear(7, 5), torch.nn.Linear(5, 3)], [torch.nn.Linear(7, 5), torch.nn.Linear(5, 3)]
    for a, b in zip(ours, ref):
        b.load_state_dict(a.state_dict())
    x = torch.randn(4, 7)
    for net in (ours, ref):
        net[1](net[0](x)).pow(2).sum().backward()
    pa = [p for m in ours for p in m.parameters()]
    pb = [p for m in ref for p in m.parameters()]
    pa[-1].grad = None   # a parameter without a gradient is skipped by both
    pb[-1].grad = None
    total = clip_grad_norm(pa, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(pb, max_norm, foreach=True)
    assert torch.equal(total, expected)
    for a, b in zip(pa[:-1], pb[:-1]):
        assert torch.equal(a.grad, b.grad)

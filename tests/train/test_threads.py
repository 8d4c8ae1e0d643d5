"""`ThreadWatch`: re-checking the thread count during a run keeps the faster count as the load
changes, and switching counts does not change what a run computes."""
from __future__ import annotations

import json

import pytest
import torch

from rnnkit.tasks import language_model as lm
from rnnkit.train import Callback
from rnnkit.train.threads import ThreadWatch


class FakeMachine:
    """A clock that a step advances by the seconds a step costs at the current thread count; the
    costs change when the test says the load changed."""

    def __init__(self, cost: dict[int, float], threads: int = 2):
        self.cost, self.threads, self.now = dict(cost), threads, 0.0

    def clock(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.threads = n


class FakeTrainer:
    def __init__(self):
        self.step, self.said = 0, []

    def echo(self, text: str) -> None:
        self.said.append(text)


def steps(watch, machine, trainer, n):
    for _ in range(n):
        machine.now += machine.cost[machine.threads]
        trainer.step += 1
        watch.on_step_end(trainer)


def make(machine, **kw):
    watch = ThreadWatch(2, every_s=10.0, window_s=1.0, min_steps=3, clock=machine.clock,
                        set_threads=machine.set_threads, get_threads=lambda: machine.threads, **kw)
    trainer = FakeTrainer()
    watch.on_train_start(trainer)
    return watch, trainer


def faster(cost, current, gain=1.2):
    """The count a check should keep, by brute force from the costs: the other count only when its
    steps per second are at least ``gain`` times the current's."""
    other = 1 if current > 1 else 2
    return other if (1 / cost[other]) >= gain * (1 / cost[current]) else current


@pytest.mark.parametrize("loads", [
    [{2: 0.1, 1: 0.18}, {2: 1.0, 1: 0.15}, {2: 0.1, 1: 0.18}],     # quiet, busy, quiet again
    [{2: 0.1, 1: 0.11}, {2: 0.1, 1: 0.09}, {2: 0.2, 1: 0.1}],      # within the gain, then past it
])
def test_the_watch_keeps_the_faster_count_as_the_load_changes(loads):
    machine = FakeMachine(loads[0])
    watch, trainer = make(machine)
    expected, switches = 2, 0
    for cost in loads:
        machine.cost = cost
        before = len(watch.checks)
        steps(watch, machine, trainer, 400)      # several checks at this load
        assert len(watch.checks) > before + 1
        for _ in range(2):                       # a second check can only confirm the first
            switches += faster(cost, expected) != expected
            expected = faster(cost, expected)
        assert machine.threads == expected, (cost, watch.checks[-3:])
        last = watch.checks[-1]
        assert last["chosen"] == expected
        for n, rate in last["threads"].items():  # what it measured is the machine's speed
            assert rate == pytest.approx(1 / cost[n])
    assert len(trainer.said) == switches         # each switch said once, with its reason
    assert all("the machine's load changed" in s for s in trainer.said)


def test_a_check_waits_its_time_and_lasts_its_windows():
    machine = FakeMachine({2: 0.125, 1: 0.25})   # binary fractions: the clock adds up exactly
    watch, trainer = make(machine)
    steps(watch, machine, trainer, 79)           # 9.875 s: no check yet
    assert watch.checks == [] and machine.threads == 2
    steps(watch, machine, trainer, 1 + 8)        # at 10 s the reference window: 8 steps, 1 s
    assert machine.threads == 1                  # now timing the other count
    steps(watch, machine, trainer, 3)
    assert machine.threads == 1                  # 0.75 s: the window is not over
    steps(watch, machine, trainer, 1)            # 4 steps, 1 s: slower, so back to 2 threads
    assert machine.threads == 2 and len(watch.checks) == 1
    assert watch.checks[0] == {"step": 92, "threads": {2: 8.0, 1: 4.0}, "chosen": 2}
    steps(watch, machine, trainer, 79)           # the next check comes 10 s after the last
    assert len(watch.checks) == 1 and machine.threads == 2


def test_a_validation_inside_a_window_spoils_the_check_and_restores_the_count():
    machine = FakeMachine({2: 1.0, 1: 0.1})      # busy: 1 thread is 10x faster
    watch, trainer = make(machine)
    steps(watch, machine, trainer, 10)           # at 10 s the reference window begins at 2 threads
    steps(watch, machine, trainer, 3)            # 3 steps, 3 s: it ends
    assert machine.threads == 1                  # the trial window has begun
    watch.on_validation(trainer, {})
    assert machine.threads == 2 and watch.checks == []
    steps(watch, machine, trainer, 20)           # the check starts again at once, and decides
    assert machine.threads == 1 and watch.checks[-1]["chosen"] == 1


def test_the_logged_records_say_the_count():
    machine = FakeMachine({2: 0.1, 1: 0.2}, threads=2)
    watch, trainer = make(machine)
    record: dict = {}
    watch.on_log(trainer, record)
    assert record == {"threads": 2}
    with pytest.raises(ValueError, match="most must be >= 2"):
        ThreadWatch(1)


class FlipThreads(Callback):
    """Changes the thread count after every step: 1, 2, 1, 2, ..."""

    def on_step_end(self, trainer):
        torch.set_num_threads(1 + trainer.step % 2)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_switching_threads_does_not_change_what_a_run_computes(tmp_path, data_dir, precision):
    """The ground the watch stands on: a run whose thread count changes at every step computes the
    same losses and weights, bit for bit, as one at 1 thread; weight drop included (its masks,
    4 x 128 x 128 draws, are large enough for torch to draw them in parallel)."""
    text = tmp_path / "t.txt"
    text.write_text((data_dir / "timemachine.txt").read_text()[:20_000])
    common = dict(hidden=128, layers=2, embedding=16, batch_size=8, seq_len=32, sample_length=0,
                  dropout=0.1, weight_drop=0.3, steps=12, eval_every=6, log_every=1, progress=False,
                  echo=None, seed=3, precision=precision)
    threads = torch.get_num_threads()
    try:
        lm.train(str(text), out=tmp_path / "one", threads=1, **common)
        lm.train(str(text), out=tmp_path / "flip", threads=1, callbacks=[FlipThreads()], **common)
    finally:
        torch.set_num_threads(threads)

    def losses(run):
        return [r["loss"] for r in map(json.loads, (run / "history.jsonl").read_text().splitlines())
                if r.get("split") == "train"]
    assert losses(tmp_path / "one") == losses(tmp_path / "flip") and len(losses(tmp_path / "one")) == 12
    a, b = lm.load(tmp_path / "one").model, lm.load(tmp_path / "flip").model
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_a_minutes_run_with_the_count_left_to_rnnkit_is_watched(tmp_path, data_dir):
    text = tmp_path / "t.txt"
    text.write_text((data_dir / "timemachine.txt").read_text()[:20_000])
    common = dict(hidden=32, layers=1, embedding=16, batch_size=8, seq_len=32, sample_length=0,
                  dropout=0.0, lr=1e-3, precision="fp32", minutes=0.05, log_every=5, progress=False,
                  echo=None, seed=0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        lm.train(str(text), out=tmp_path / "auto", **common)
        lm.train(str(text), out=tmp_path / "fixed", threads=1, **common)
    finally:
        torch.set_num_threads(threads)

    def logged(run):
        return [r for r in map(json.loads, (run / "history.jsonl").read_text().splitlines())
                if r.get("split") == "train"]
    assert logged(tmp_path / "auto") and all(r["threads"] in (1, 2) for r in logged(tmp_path / "auto"))
    assert logged(tmp_path / "fixed") and all("threads" not in r for r in logged(tmp_path / "fixed"))

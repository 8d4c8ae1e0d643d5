"""The default recipe's choices follow its documented rule, and never override what the user set."""
from __future__ import annotations

import pytest
import torch

from rnnkit.tasks.lm import recipe
from rnnkit.tasks.lm.config import LMConfig
from rnnkit.train import TrainConfig


def never():
    raise AssertionError("the speed is only measured for a budget in minutes")


def test_small_text_gets_the_deep_regularised_recipe():
    # 40 epochs of a 100k-token text: a 2-layer model would read it 40 / 3 >= 10 times
    # -> 2 layers, batch 32, lr 4e-3, max dropout
    cfg, tr, why = recipe.choose(LMConfig(), TrainConfig(epochs=40), 100_000, never)
    assert (cfg.layers, cfg.batch_size, tr.lr) == (2, 32, 4e-3)
    assert cfg.dropout == 0.3 and "small-text recipe" in why


def test_large_text_gets_the_fast_unregularised_recipe():
    # 2,000 steps of 64 x 32 tokens over 4M tokens: ~1 pass -> 1 layer, batch 64, lr 8e-3
    cfg, tr, why = recipe.choose(LMConfig(), TrainConfig(steps=2000), 4_000_000, never)
    passes = 2000 * 64 * 32 / 4_000_000
    assert (cfg.layers, cfg.batch_size, tr.lr) == (1, 64, 8e-3)
    assert cfg.dropout == pytest.approx(round(passes / 80, 3))
    assert f"~{passes:.1f} times" in why


def test_minutes_budget_measures_the_speed_once_and_discounts_depth():
    calls = []
    speed = lambda: calls.append(1) or 10_000.0
    # 3 minutes at 10k tokens/s over 50k tokens: 36 passes with one layer, 36 / 3 = 12 with two
    # -> small text, dropout from the 2-layer model's 12 passes
    cfg, tr, _ = recipe.choose(LMConfig(), TrainConfig(minutes=3), 50_000, speed)
    assert len(calls) == 1 and cfg.layers == 2
    assert cfg.dropout == pytest.approx(round(36 / recipe.DEEP_SLOWDOWN / 80, 3))
    # the same over 100k tokens: 18 passes, 6 with two layers -> one layer, dropout from 18
    cfg, tr, _ = recipe.choose(LMConfig(), TrainConfig(minutes=3), 100_000, speed)
    assert cfg.layers == 1 and cfg.dropout == pytest.approx(round(18 / 80, 3))


def test_user_choices_are_kept():
    cfg, tr, _ = recipe.choose(LMConfig(layers=3, dropout=0.0, batch_size=8),
                               TrainConfig(epochs=40, lr=1e-3), 100_000, never)
    assert (cfg.layers, cfg.dropout, cfg.batch_size, tr.lr) == (3, 0.0, 8, 1e-3)
    same, same_tr, why = recipe.choose(cfg, tr, 100_000, never)
    assert same == cfg and why == ""
    _, sgd, _ = recipe.choose(LMConfig(), TrainConfig(optimizer="sgd", epochs=1), 10_000, never)
    assert sgd.lr is None and sgd.learning_rate == 1.0      # the textbook's SGD keeps its rate


def test_probe_measures_a_positive_speed_and_leaves_the_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    speed = recipe.probe_tokens_per_second(11, LMConfig(hidden=8, embedding=4, seq_len=4),
                                           torch.device("cpu"), seconds=0.01)
    assert speed > 0
    assert torch.equal(torch.rand(3), expected)


def test_the_faster_thread_count_is_kept_and_both_are_measured():
    seen = []

    def probe(n):
        seen.append(n)
        return {1: 5_000.0, 4: 20_000.0}[n]
    assert recipe.fastest_threads(probe, 4) == (4, {1: 5_000.0, 4: 20_000.0}) and sorted(seen) == [1, 4]
    busy = lambda n: {1: 9_000.0, 4: 700.0}[n]          # spin-waiting threads on a busy machine
    assert recipe.fastest_threads(busy, 4) == (1, {1: 9_000.0, 4: 700.0})
    assert recipe.fastest_threads(lambda n: 3.0, 1) == (1, {1: 3.0})
    assert recipe.fastest_threads(lambda n: 3.0, 2)[0] == 2   # a tie keeps all threads


def test_a_minutes_run_records_the_thread_count_it_measured(tmp_path, data_dir):
    import json

    from rnnkit.tasks import language_model as lm
    text = tmp_path / "t.txt"
    text.write_text((data_dir / "timemachine.txt").read_text()[:3000])
    before = torch.get_num_threads()
    lm.train(str(text), out=tmp_path / "run", minutes=0.02, hidden=8, embedding=4, seq_len=8,
             sample_length=0, progress=False, echo=None)
    assert torch.get_num_threads() in (1, before)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    flat = json.dumps(config)
    assert '"threads"' in flat
    measured = [v for v in _walk(config) if isinstance(v, dict) and "threads" in v
                and isinstance(v["threads"], dict)]
    assert measured and set(measured[0]["threads"]) == {str(n) for n in {1, before}}
    chosen = [v["threads"] for v in _walk(config)
              if isinstance(v, dict) and isinstance(v.get("threads"), int)]
    best = max(measured[0]["threads"].items(), key=lambda kv: (kv[1], int(kv[0])))[0]
    assert chosen == [int(best)]
    torch.set_num_threads(before)


def _walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)

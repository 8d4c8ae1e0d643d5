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

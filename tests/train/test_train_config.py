"""Typed configs: dict checking, CLI flags derived from fields, TrainConfig's rules."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from rnnkit.train.config import TrainConfig, add_arguments, check_fields, from_dict, given_options, \
    option


@dataclass
class Demo:
    hidden: int = option(8, "width")
    rate: float = option(0.5, "a rate")
    name: str = option("lstm", "a choice", choices=("lstm", "gru"))
    tied: bool = option(False, "a switch")
    limit: int | None = option(None, "optional", flag="--max-limit", aliases=("--lim",))

    def __post_init__(self):
        check_fields(self)


def test_from_dict_refuses_unknown_keys_and_wrong_types():
    assert from_dict(Demo, {"hidden": 3, "rate": 1}) == Demo(hidden=3, rate=1.0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['hiden'\]; known options: "
                                         r"\['hidden', 'limit', 'name', 'rate', 'tied'\]"):
        from_dict(Demo, {"hiden": 3})
    with pytest.raises(TypeError, match="hidden must be int, got str '3'"):
        Demo(hidden="3")
    with pytest.raises(TypeError, match="hidden must be int, got bool True"):
        Demo(hidden=True)
    with pytest.raises(TypeError, match="tied must be bool, got int 1"):
        Demo(tied=1)
    with pytest.raises(ValueError, match=r"name must be one of \['lstm', 'gru'\], got 'rnn'"):
        Demo(name="rnn")
    with pytest.raises(ValueError, match="rate must be a finite number, got nan"):
        Demo(rate=float("nan"))


def parse(argv):
    p = argparse.ArgumentParser()
    add_arguments(p, Demo)
    return p.parse_args(argv)


def test_flags_are_derived_and_only_given_ones_are_returned():
    assert given_options(Demo, parse([])) == {}
    args = parse(["--hidden", "5", "--tied", "--max-limit", "7", "--name", "gru"])
    assert given_options(Demo, args) == {"hidden": 5, "tied": True, "limit": 7, "name": "gru"}
    assert given_options(Demo, parse(["--no-tied", "--lim", "none"])) == {"tied": False,
                                                                         "limit": None}
    with pytest.raises(SystemExit):
        parse(["--name", "rnn"])
    with pytest.raises(SystemExit):
        parse(["--hidden", "x"])


def test_train_config_rules():
    assert TrainConfig().minutes == 3.0 and TrainConfig().budget == ("minutes", 3.0)
    assert TrainConfig(steps=10).budget == ("steps", 10) and TrainConfig(steps=10).minutes is None
    assert TrainConfig(optimizer="sgd").learning_rate == 1.0   # the textbook's rate
    assert TrainConfig(optimizer="adam").learning_rate == 3e-3 and TrainConfig().lr is None
    with pytest.raises(ValueError, match="give one budget"):
        TrainConfig(steps=10, minutes=1)
    with pytest.raises(ValueError, match="steps must be > 0, got 0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="clip must be >= 0"):
        TrainConfig(clip=-1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="lion")

"""The task layer: the registry, the run folder's envelope, the trainer driven by a task's primary
metric (either direction) and early stopping, one atomic writer, and `rnnkit predict` dispatch."""
from __future__ import annotations

import errno
import json
import math
import os
import threading

import pytest
import torch
from torch import nn

from rnnkit.cli.main import main
from rnnkit.data import atomic
from rnnkit.tasks import TASKS, get_task, task_of_run
from rnnkit.tasks.lm.task import LanguageModelTask
from rnnkit.train import RunFolder, RunFolderError, TrainConfig, Trainer


def test_registry_names_every_task_and_refuses_unknown_ones():
    assert get_task("lm") is LanguageModelTask
    for name in TASKS:
        cls = get_task(name)
        assert cls.name == name
        assert hasattr(cls, "Config") and isinstance(cls.higher_is_better, bool)
    with pytest.raises(ValueError, match="unknown task 'nope'; known tasks: lm"):
        get_task("nope")


def test_cli_refuses_an_unknown_task_listing_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--task", "nope", "--steps", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'lm'" in err


@pytest.mark.parametrize("envelope, message", [
    ({"format": "rnnkit.run", "version": 99, "task": "lm"}, "format version 99"),
    ({"format": "rnnkit.run", "version": "1", "task": "lm"}, "format version '1'"),
    ({"format": "other", "version": 1, "task": "lm"}, "not the configuration of an rnnkit run"),
    ({"format": "rnnkit.run", "version": 2}, "names no task"),
])
def test_run_folder_refuses_an_unknown_envelope(tmp_path, envelope, message):
    (tmp_path / "config.json").write_text(json.dumps(envelope))
    with pytest.raises(RunFolderError, match=message):
        RunFolder(tmp_path).read_config()


def test_run_folder_checks_the_task(tmp_path):
    RunFolder(tmp_path).write_config("lm", {"lm": {}})
    assert RunFolder(tmp_path).task_name() == "lm"
    with pytest.raises(RunFolderError, match="is a 'lm' run, expected a 'classify' run"):
        RunFolder(tmp_path).read_config("classify")
    with pytest.raises(ValueError, match="may not be named"):
        RunFolder(tmp_path).write_config("lm", {"task": 1})


class ScoreTask:
    """A task whose primary metric is a score read from a script (higher or lower is better)."""

    count_unit = "sentences"

    def __init__(self, scores, higher):
        self.model = nn.Linear(2, 1)
        self.scores, self.calls = list(scores), 0
        self.primary_metric, self.higher_is_better = "score", higher
        self.steps_per_epoch = 4

    def next_batch(self):
        return torch.ones(3, 2)

    def loss(self, batch):
        return self.model(batch).pow(2).sum(), torch.tensor(3)  # a count may be a tensor

    def evaluate(self):
        self.calls += 1
        return {"loss": 1.0, "score": self.scores[self.calls - 1]}

    def state_dict(self):
        return {}

    def load_state_dict(self, d):
        pass


@pytest.mark.parametrize("higher, best_step", [(True, 3), (False, 2)])
def test_best_follows_the_primary_metric_and_its_direction(tmp_path, higher, best_step):
    task = ScoreTask([0.5, 0.2, 0.9, 0.7], higher)
    trainer = Trainer(task, TrainConfig(steps=4, eval_every=1, log_every=1, lr=0.01),
                      tmp_path / "r", echo=lambda s: None)
    result = trainer.fit()
    assert result.best["score"] == (max if higher else min)([0.5, 0.2, 0.9, 0.7])
    assert result.best["step"] == best_step
    train = [r for r in trainer.history if r["split"] == "train"]
    assert all("sentences_per_s" in r and "ppl" not in r for r in train)


def test_early_stopping_after_patience_validations_without_improvement(tmp_path):
    task = ScoreTask([0.5, 0.6, 0.55, 0.58, 0.59, 0.9, 0.95], higher=True)
    trainer = Trainer(task, TrainConfig(steps=7, eval_every=1, log_every=1, lr=0.01, patience=3),
                      tmp_path / "r", echo=lambda s: None)
    result = trainer.fit()
    assert result.status == "stopped" and result.step == 5
    assert "early stopping" in result.reason and result.best["score"] == 0.6


def test_atomic_write_is_durable_and_never_leaves_half_a_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic.atomic_write(target, b"old")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic.atomic_write(target, "new")
    assert target.read_bytes() == b"new" and len(synced) >= 2  # the file, then its folder
    assert oct(target.stat().st_mode & 0o777) == oct(atomic.FILE_MODE)

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            full_disk()
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_two_writers_never_share_a_temporary_name(tmp_path):
    target = tmp_path / "shared.txt"
    names, barrier = [], threading.Barrier(8)

    def write(i):
        with atomic.atomic_path(target) as tmp:
            names.append(tmp.name)
            barrier.wait()  # every writer holds its temporary file at the same time
            tmp.write_text(str(i) * 1000)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    text = target.read_text()
    assert len(text) == 1000 and len(set(text)) == 1  # one whole write won


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "run"
    text = tmp_path_factory.mktemp("text") / "t.txt"
    text.write_text("the cat sat on the mat. " * 200)
    assert main(["train", "--data", str(text), "--steps", "30", "--hidden", "16", "--embedding", "8",
                 "--batch-size", "8", "--seq-len", "16", "--layers", "1", "--out", str(out),
                 "--no-progress", "--sample-length", "0", "--threads", "1"]) == 0
    return out


def test_predict_and_evaluate_dispatch_on_the_runs_task(lm_run, capsys):
    assert task_of_run(lm_run) is LanguageModelTask
    assert main(["predict", str(lm_run), "the cat sat on the m", "--top", "3"]) == 0
    printed = capsys.readouterr().out
    from rnnkit.tasks import lm
    loaded = lm.load(lm_run)
    ids = torch.as_tensor(loaded.vocab.encode("the cat sat on the m"), dtype=torch.long).view(-1, 1)
    with torch.no_grad():
        logits, _ = loaded.model.forward_time_major(ids)
    probs = torch.softmax(logits[-1, 0], -1)
    p, i = probs.topk(3)
    expected = ", ".join(f"{loaded.vocab.tokens[int(j)]!r} {float(q):.3f}" for q, j in zip(p, i))
    assert printed == f"'the cat sat on the m' -> {expected}\n"
    assert math.isclose(sum(q for _, q in lm.next_token_distribution(loaded, "the", top=len(
        loaded.vocab))), 1.0, rel_tol=1e-5)
    assert main(["evaluate", str(lm_run)]) == 0
    assert "perplexity" in capsys.readouterr().out


def test_predict_needs_inputs(lm_run, capsys):
    assert main(["predict", str(lm_run)]) == 2   # a usage error
    assert "give one or more texts, or --input FILE" in capsys.readouterr().err

"""The conditional language model (1→N): its initial state comes from the condition, its samples
depend on the condition, and the command line trains, generates, evaluates and refuses what it must."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.cli.main import main
from rnnkit.tasks.lm.conditional import ConditionalLanguageModel, generate


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_initial_state_is_tanh_of_the_condition_cut_into_the_stack_state(cell):
    torch.manual_seed(0)
    m = ConditionalLanguageModel(7, 3, cell=cell, hidden=5, layers=2, embedding=4)
    c = torch.randn(2, 3)
    state = m.initial_state(c)
    z = torch.tanh(c @ m.condition.weight.t() + m.condition.bias)           # (2, sum L*H)
    flat = torch.cat([s.transpose(0, 1).reshape(2, -1) for s in state], 1)
    torch.testing.assert_close(flat, z)
    assert [tuple(s.shape) for s in state] == [(2, 2, 5)] * (2 if cell == "lstm" else 1)
    # the state really starts the recurrence: the first logits equal a run started from it by hand
    ids = torch.tensor([[1], [2]]).t()                                         # (T=1, B=2)
    logits, _ = m.forward_time_major(ids, state)
    logits_ref, _ = m.forward_time_major(ids, tuple(s.clone() for s in state))
    torch.testing.assert_close(logits, logits_ref)
    with pytest.raises(ValueError, match=r"expected a condition of shape \(B, K=3\), got \(2, 4\)"):
        m.initial_state(torch.zeros(2, 4))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Two classes a computer can tell apart only by the condition: every text starts the same way,
    then class x writes x's and class o writes o's."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(300):
        label = rng.choice(["ex", "oh"])
        body = ("x" if label == "ex" else "o") * int(rng.integers(4, 9))
        lines.append(f"so {body}\t{label}")
    path = tmp_path_factory.mktemp("clm") / "labelled.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def run(labelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("clm-run") / "run"
    assert main(["train", "--data", str(labelled), "--condition-col", "label", "--steps", "150",
                 "--hidden", "32", "--embedding", "16", "--layers", "1", "--batch-size", "16",
                 "--lr", "0.01", "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    return out


def test_samples_depend_on_the_condition(run, capsys):
    xs = generate(run, "ex", 20, seed=0, temperature=0.5)
    os_ = generate(run, "oh", 20, seed=0, temperature=0.5)
    def share(texts, ch):   # in what follows the shared "so " start
        bodies = [t[3:] for t in texts]
        return sum(b.count(ch) for b in bodies) / max(1, sum(map(len, bodies)))
    assert share(xs, "x") > 0.3 and share(xs, "o") < 0.05, xs
    assert share(os_, "o") > 0.3 and share(os_, "x") < 0.05, os_
    assert main(["generate", str(run), "--condition", "oh", "--num-samples", "3", "--seed", "1",
                 "--temperature", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("x" not in line[3:] for line in lines)


def test_a_feature_vector_from_python_conditions_too(run):
    """Any vector of the condition size: between the two one-hot vectors the model still writes."""
    texts = generate(run, [1.0, 0.0], 5, seed=0)
    assert texts == generate(run, "ex", 5, seed=0)   # a class is its one-hot vector
    with pytest.raises(ValueError, match="expected a vector of size 2"):
        generate(run, [1.0, 0.0, 0.0], 1)


def test_cli_errors_and_evaluation(run, labelled, capsys):
    assert main(["generate", str(run)]) != 0
    assert "give --condition LABEL" in capsys.readouterr().err
    assert main(["generate", str(run), "--condition", "maybe"]) != 0
    assert "'maybe' is not a class of this run; its classes are ['ex', 'oh']" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--data", str(labelled)]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out
    ppl = float(out.split("perplexity ")[1].split(",")[0])
    assert ppl < 3.0   # the texts are nearly determined by their label (chance: the vocabulary size)


def test_a_single_class_is_refused(tmp_path, capsys):
    data = tmp_path / "one.tsv"
    data.write_text("good day\tpos\nfine day\tpos\n")
    assert main(["train", "--data", str(data), "--condition-col", "label", "--steps", "1",
                 "--out", str(tmp_path / "r"), "--no-progress"]) != 0
    assert "needs at least two classes" in capsys.readouterr().err

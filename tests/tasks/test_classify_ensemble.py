"""`--ensemble K`: the ensemble's probabilities are the mean of its members' (each member rebuilt alone
as a `TextClassifier` from its weights, the mean taken in NumPy); each member trains on its own loss
(its gradients are those of its cross-entropy alone); and a run with an ensemble keeps its members
through the run folder: `load`, `predict` and `evaluate` give the ensemble's numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rnnkit.errors import RnnkitError
from rnnkit.tasks.classify import ClassifyConfig, ClassifyTask, TextClassifier, load, predict, predict_proba
from rnnkit.tasks.classify import train as train_classifier
from rnnkit.tasks.classify.ensemble import ClassifierEnsemble, build_classifier
from rnnkit.tasks.classify.nbsvm import pad_ngrams, text_ngram_ids
from rnnkit.tasks.classify.subwords import encode_subwords
from rnnkit.train import TrainConfig

KW = dict(cell="gru", hidden=6, layers=1, embedding=5, pooling="max", dropout=0.3, subwords=30)


def alone(ensemble: ClassifierEnsemble, k: int) -> TextClassifier:
    """Member ``k`` rebuilt as a standalone classifier from its weights."""
    args = ensemble.config()
    assert args.pop("ensemble") == len(ensemble.members)
    m = TextClassifier(**args)
    m.load_state_dict(ensemble.members[k].state_dict())
    return m.eval()


def inputs(seed: int, V: int = 40):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 2, 4, 1])
    ids = torch.randint(1, V, (4, 6), generator=g)
    sub = torch.randint(0, 31, (4, 6, 3), generator=g)
    return ids, lengths, sub


def test_ensemble_probabilities_are_the_mean_of_its_members():
    torch.manual_seed(0)
    ens = build_classifier(40, 3, ensemble=3, **KW).eval()
    assert isinstance(ens, ClassifierEnsemble) and len(ens.members) == 3
    ids, lengths, sub = inputs(1)
    with torch.no_grad():
        members = [torch.softmax(alone(ens, k)(ids, lengths, sub), 1).numpy() for k in range(3)]
        got = torch.softmax(ens(ids, lengths, sub), 1).numpy()
    assert not np.allclose(members[0], members[1], atol=1e-3)     # the members differ
    np.testing.assert_allclose(got, np.mean(members, axis=0), rtol=1e-5, atol=1e-6)
    # what predict/evaluate use, batched by length in another order
    seqs = [ids[b, :n].numpy() for b, n in enumerate(lengths.tolist())]
    subs = [sub[b, :n].numpy() for b, n in enumerate(lengths.tolist())]
    np.testing.assert_allclose(predict_proba(ens, seqs, 0, subwords=subs).numpy(), np.mean(members, axis=0),
                               rtol=1e-5, atol=1e-6)


def test_one_member_is_a_plain_classifier_and_bad_sizes_are_refused():
    assert type(build_classifier(40, 2, ensemble=1, **KW)) is TextClassifier
    assert type(build_classifier(40, 2, **KW)) is TextClassifier        # a run from before ensembles
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="ensemble"):
            build_classifier(40, 2, ensemble=bad, **KW)
    with pytest.raises(ValueError, match="ensemble must be >= 1, got 0"):
        ClassifyConfig(data="x", ensemble=0)


def test_each_member_learns_from_its_own_loss_alone():
    """The ensemble's training loss is the mean of the members' cross-entropies, and a member's gradients
    are those of its own cross-entropy (divided by K): no member's update depends on another's outputs."""
    torch.manual_seed(0)
    K = 3
    ens = build_classifier(40, 2, ensemble=K, **{**KW, "dropout": 0.0})
    task = ClassifyTask(ClassifyConfig(data="x", ensemble=K), TrainConfig())
    task.model = ens
    ids, lengths, sub = inputs(2)
    y = torch.tensor([0, 1, 1, 0])
    loss, count = task.loss((ids, lengths, sub, None, y))   # no n-gram branch in KW
    assert count == 4
    loss.backward()
    total = 0.0
    for k in range(K):
        m = alone(ens, k).train()
        own = F.cross_entropy(m(ids, lengths, sub), y, reduction="sum")
        (own / K).backward()
        total += float(own.detach())
        for (name, p), q in zip(ens.members[k].named_parameters(), m.parameters()):
            if q.grad is None:
                assert p.grad is None or not p.grad.any(), name
            else:
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    assert loss.item() == pytest.approx(total / K, rel=1e-6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A seconds-long run with --ensemble 2 on a small written data set."""
    root = tmp_path_factory.mktemp("ensemble")
    rng = np.random.default_rng(0)
    good, bad = ["great", "lovely", "fine", "superb"], ["awful", "broken", "rude", "cold"]
    rows = []
    for i in range(160):
        label = i % 2
        words = list(rng.choice(good if label else bad, 2)) + list(rng.choice(["the", "a", "phone"], 2))
        rows.append(" ".join(rng.permutation(words)) + f"\t{label}")
    (root / "data.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = root / "run"
    train_classifier(data=str(root / "data.tsv"), out=out, ensemble=2, ngrams=300, hidden=8, embedding=8,
                     subwords=50, epochs=3, batch_size=16, progress=False, echo=None)
    return out


def test_an_ensemble_run_loads_predicts_and_evaluates_as_the_mean_of_its_members(run):
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["ensemble"] == 2
    loaded = load(run)
    assert isinstance(loaded.model, ClassifierEnsemble) and len(loaded.model.members) == 2
    texts = ["great phone", "the phone is broken and cold", "a superb lovely phone"]
    got = predict(run, texts)
    for text, pred in zip(texts, got):
        words = loaded.vocab.tokenize(text)
        ids = torch.from_numpy(np.asarray(loaded.vocab.encode(text), dtype=np.int64)).unsqueeze(0)
        sub = torch.from_numpy(encode_subwords(words, loaded.model.subwords)).unsqueeze(0)
        ng = pad_ngrams([text_ngram_ids(words, loaded.model.ngrams)]) if loaded.model.ngrams else None
        with torch.no_grad():
            members = [torch.softmax(m(ids, torch.tensor([ids.shape[1]]), sub, ng), 1)[0].numpy()
                       for m in loaded.model.members]
        mean = np.mean(members, axis=0)
        assert {lab: p for lab, p in pred} == pytest.approx(
            {lab: float(mean[i]) for i, lab in enumerate(loaded.labels)}, abs=1e-5)
    r = ClassifyTask.evaluate_run(run)
    assert 0 <= r["accuracy"] <= 1 and r["examples"] > 0


def test_explain_reads_an_ensembles_first_member_and_the_ensembles_probabilities(run):
    from rnnkit.viz.tokens import classifier_activations
    loaded = load(run)
    acts = classifier_activations(loaded, "great phone\nthe phone is broken")
    want = np.array([[p for _, p in sorted(pred, key=lambda lp: loaded.labels.index(lp[0]))]
                     for pred in predict(run, ["great phone", "the phone is broken"])])
    np.testing.assert_allclose(acts.probs, want, atol=1e-5)
    assert len(acts.layers) == 2     # the first member's forward and backward layer


def test_a_corrupt_ensemble_size_in_config_json_is_an_error(run, tmp_path):
    import shutil
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    config = json.loads((bad / "config.json").read_text(encoding="utf-8"))
    config["model"]["ensemble"] = 3                  # the weights hold 2 members
    (bad / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises((RnnkitError, RuntimeError)):
        load(bad)

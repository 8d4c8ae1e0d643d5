"""The tagger's model and metrics against independent computations: padding invariance (the same
sentences padded two ways give the same logits, the backward direction included), the CRF against
brute-force enumeration of every tag sequence, span scores against the seqeval package."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

from rnnkit.tasks.crf import CRF
from rnnkit.tasks.tag import TagConfig
from rnnkit.tasks.tag_data import Sentence
from rnnkit.tasks.tag_encode import TagVocabs, encode, make_batch
from rnnkit.tasks.tag_metrics import is_bio, span_scores, spans, tag_scores
from rnnkit.tasks.tag_model import TagBatch, Tagger

SENTENCES = [["The", "cat", "sat", "."], ["Dogs", "bark"], ["A", "very", "long", "sentence", "indeed", "!"],
             ["Hi"]]


def _model(char_encoder, cell="lstm", crf=False, char_widths=(3,)):
    sents = [Sentence(w, ["X" if i % 2 else "Y" for i in range(len(w))], []) for w in SENTENCES]
    vocabs = TagVocabs.build(sents[:2])   # words of the last two sentences are unknown to it
    torch.manual_seed(0)
    model = Tagger(len(vocabs.words), len(vocabs.chars), len(vocabs.tags), embedding=8, char_embedding=6,
                   char_hidden=5, char_encoder=char_encoder, char_widths=char_widths, cell=cell, hidden=7,
                   layers=2, crf=crf)
    return model.double().eval(), encode(sents, vocabs, max_word_chars=20)


def _padded(batch: TagBatch, extra_words: int, extra_chars: int) -> TagBatch:
    """The same batch with more padding: ``extra_words`` more positions (pointing at other forms)
    and ``extra_chars`` more character columns."""
    B, T = batch.words.shape
    U, C = batch.chars.shape
    words = torch.cat([batch.words, torch.full((B, extra_words), 3)], 1)       # padding need not be <pad>
    forms = torch.cat([batch.forms, torch.full((B, extra_words), U - 1)], 1)
    chars = torch.cat([batch.chars, torch.full((U, extra_chars), 5)], 1)
    return TagBatch(words, batch.lengths, chars, batch.char_lengths, forms, None)


@pytest.mark.parametrize("char_encoder, cell, widths", [("lstm", "lstm", (3,)), ("cnn", "gru", (3,)),
                                                         ("cnn", "lstm", (1, 2, 4, 5))])
def test_padding_two_ways_gives_identical_logits(char_encoder, cell, widths):
    model, enc = _model(char_encoder, cell, char_widths=widths)
    idx = list(range(len(SENTENCES)))
    batch = make_batch(enc, idx)
    with torch.no_grad():
        a = model(batch)
        b = model(_padded(batch, extra_words=5, extra_chars=4))
        # each sentence alone (no padding at all) against its row of the padded batch
        alone = [model(make_batch(enc, [i]))[0] for i in idx]
    assert b.shape[1] == a.shape[1] + 5
    for i, n in enumerate(batch.lengths.tolist()):
        torch.testing.assert_close(b[i, :n], a[i, :n], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(alone[i], a[i, :n], rtol=1e-12, atol=1e-12)
    # the backward direction starts at each sentence's own end: the first word's logits depend on
    # the last word (a model that ran the reverse direction from the padded end would still pass
    # the checks above only by luck, so show the dependence is real)
    changed = make_batch(enc, idx)
    changed.words[2, 5] = 2     # the last word of sentence 2 becomes another (known) word
    with torch.no_grad():
        assert not torch.allclose(model(changed)[2, 0], a[2, 0])


def test_char_cnn_against_explicit_windows():
    """Each width's filters at every character of the word (zeros beyond its ends), max over the
    positions, computed window by window with NumPy."""
    widths = (1, 2, 3, 4)
    model, enc = _model("cnn", char_widths=widths)
    batch = make_batch(enc, list(range(len(SENTENCES))))
    cnn = model.chars
    with torch.no_grad():
        got = cnn(batch.chars, batch.char_lengths).numpy()
    emb = cnn.embed.weight.detach().numpy()
    for u, n in enumerate(batch.char_lengths.tolist()):
        x = emb[batch.chars[u, :n].numpy()]                                   # (n, E_c): this word only
        parts = []
        for w, conv in zip(widths, cnn.convs):
            W, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()   # (F, E_c, w), (F,)
            left = (w - 1) // 2
            windows = []
            for j in range(n):
                win = np.zeros((w, x.shape[1]))
                for k in range(w):
                    i = j - left + k
                    if 0 <= i < n:
                        win[k] = x[i]
                windows.append(np.einsum("fek,ke->f", W, win) + b)
            parts.append(np.max(windows, axis=0))
        np.testing.assert_allclose(got[u], np.concatenate(parts), rtol=1e-10, atol=1e-12)
    assert got.shape[1] == cnn.output_size == 5 * len(widths)


def test_char_widths_are_checked():
    with pytest.raises(ValueError, match=r"char_widths must be comma-separated integers >= 1 \(e.g. 2,3,4\), "
                                         r"got '2,x'"):
        TagConfig(char_widths="2,x")
    with pytest.raises(ValueError, match="char_widths must be one or more integers >= 1, got \\(0,\\)"):
        Tagger(5, 5, 2, char_encoder="cnn", char_widths=(0,))
    assert TagConfig(char_widths="2, 3,5").model_kwargs()["char_widths"] == [2, 3, 5]


def test_padding_invariance_of_the_crf_path_and_loss():
    model, enc = _model("lstm", crf=True)
    one = make_batch(enc, [1])
    both = make_batch(enc, [1, 2])           # sentence 1 padded to sentence 2's length
    with torch.no_grad():
        l1, n1 = model.loss(one)
        l2a, _ = model.loss(make_batch(enc, [2]))
        l12, n12 = model.loss(both)
    torch.testing.assert_close(l12, l1 + l2a, rtol=1e-12, atol=1e-12)
    assert n12 == n1 + len(enc.words[2])
    assert model.decode(both)[0] == model.decode(one)[0]


def _brute_force(crf: CRF, e: torch.Tensor, tags: list[int]):
    """log p(tags), and the best sequence, by enumerating all K^n sequences of one sentence."""
    n, K = e.shape

    def score(y):
        s = crf.start[y[0]] + crf.end[y[-1]] + sum(e[t, y[t]] for t in range(n))
        return s + sum(crf.trans[y[t - 1], y[t]] for t in range(1, n))

    all_y = list(itertools.product(range(K), repeat=n))
    scores = torch.stack([score(y) for y in all_y])
    best = all_y[int(scores.argmax())]
    return score(tags) - torch.logsumexp(scores, 0), list(best)


def test_crf_log_likelihood_and_viterbi_against_brute_force():
    torch.manual_seed(1)
    K = 3
    crf = CRF(K).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    lengths = [4, 1, 3, 2]
    B, T = len(lengths), max(lengths)
    e = torch.randn(B, T, K, dtype=torch.float64)
    mask = torch.arange(T) < torch.tensor(lengths).unsqueeze(1)
    tags = torch.randint(0, K, (B, T))
    ll = crf.log_likelihood(e, tags, mask)
    paths = crf.decode(e, mask)
    for i, n in enumerate(lengths):
        want_ll, want_path = _brute_force(crf, e[i, :n], tags[i, :n].tolist())
        torch.testing.assert_close(ll[i], want_ll, rtol=1e-12, atol=1e-12)
        assert paths[i] == want_path
    # the probabilities of all sequences of a sentence sum to 1
    n = 3
    total = torch.logsumexp(torch.stack([crf.log_likelihood(e[:1, :n], torch.tensor([y]), mask[:1, :n])[0]
                                         for y in itertools.product(range(K), repeat=n)]), 0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64), atol=1e-12, rtol=0)


def test_crf_refuses_bad_shapes():
    crf = CRF(3)
    with pytest.raises(ValueError, match=r"CRF: expected emissions of shape \(B, T, K=3\), got \(2, 4, 5\)"):
        crf.decode(torch.zeros(2, 4, 5), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one word"):
        crf.decode(torch.zeros(2, 4, 3), torch.zeros(2, 4, dtype=torch.bool))


def _random_tags(rng, n, scheme):
    types = ["PER", "LOC", "ORG"]
    prefixes = "BIO" if scheme == "bio" else "BIESO"
    out = []
    for _ in range(n):
        p = rng.choice(prefixes)
        out.append("O" if p == "O" else f"{p}-{rng.choice(types)}")
    return out


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_span_scores_equal_seqeval(scheme):
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    gold = [_random_tags(rng, rng.randint(1, 12), scheme) for _ in range(300)]
    pred = [[t if rng.random() < 0.7 else _random_tags(rng, 1, scheme)[0] for t in g] for g in gold]
    ours = span_scores(gold, pred)
    assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
    assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
    assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
    from seqeval.metrics.sequence_labeling import get_entities
    for g in gold[:100]:
        assert sorted(spans(g)) == sorted(get_entities(g))
    report = seqeval.classification_report(gold, pred, output_dict=True)
    for t, v in ours["types"].items():
        assert v["f1"] == pytest.approx(report[t]["f1-score"], abs=1e-12)
        assert v["support"] == report[t]["support"]


def test_token_scores_and_bio_detection():
    gold = [["A", "B", "A"], ["C"]]
    pred = [["A", "A", "A"], ["C"]]
    s = tag_scores(gold, pred)
    assert s["accuracy"] == 3 / 4 and s["tags"]["A"]["precision"] == 2 / 3 and s["tags"]["B"]["recall"] == 0
    assert is_bio(["O", "B-PER", "I-PER"]) and is_bio(["S-LOC", "E-LOC", "O"])
    assert not is_bio(["NOUN", "VERB"]) and not is_bio(["O"]) and not is_bio(["B-PER", "NOUN"])


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothed_loss_against_numpy(smoothing):
    """The summed loss with ``label_smoothing`` is, per real word, the cross-entropy of the softmax
    against the target ``(1 - s) one_hot + s / K``, written out in NumPy; padding adds nothing."""
    model, enc = _model("cnn")
    enc.tags = [np.arange(len(w)) % 2 for w in enc.words]     # the test's own gold tags (0/1)
    batch = make_batch(enc, list(range(len(SENTENCES))))
    with torch.no_grad():
        logits = model(batch).numpy()
        loss, count = model.loss(batch, label_smoothing=smoothing)
    K = logits.shape[2]
    want = 0.0
    for b, n in enumerate(batch.lengths.tolist()):
        for t in range(n):
            z = logits[b, t]
            logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
            target = np.full(K, smoothing / K)
            target[int(batch.tags[b, t])] += 1 - smoothing
            want -= (target * logp).sum()
    assert int(count) == int(batch.lengths.sum())
    np.testing.assert_allclose(float(loss), want, rtol=1e-10)


def test_label_smoothing_is_checked():
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="label_smoothing"):
            TagConfig(label_smoothing=bad)
    with pytest.raises(ValueError, match="label_smoothing=0.1 smooths the softmax's targets; the CRF"):
        TagConfig(label_smoothing=0.1, crf=True)
    assert TagConfig(label_smoothing=0.0, crf=True).crf


def test_the_task_smooths_training_targets_only():
    """`TagTask.loss` trains on smoothed targets (the model's loss with the config's
    ``label_smoothing``, checked against NumPy above) and scores a model in evaluation mode on the
    plain negative log-likelihood."""
    from rnnkit.tasks.tag import TagTask
    from rnnkit.train.config import TrainConfig
    cfg = TagConfig(word_dropout=0.0, label_smoothing=0.1)   # no random <unk>: the same batch both ways
    task = TagTask(cfg, TrainConfig(steps=1))
    task.model, enc = _model("cnn")
    enc.tags = [np.arange(len(w)) % 2 for w in enc.words]
    batch = make_batch(enc, list(range(len(SENTENCES))))
    with torch.no_grad():
        task.model.train()
        torch.manual_seed(1)
        smoothed = task.loss(batch)[0]
        torch.manual_seed(1)                   # the same dropout masks
        want = task.model.loss(batch, label_smoothing=cfg.label_smoothing)[0]
        task.model.eval()
        plain, want_plain = task.loss(batch)[0], task.model.loss(batch, label_smoothing=0.0)[0]
    torch.testing.assert_close(smoothed, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(plain, want_plain, rtol=1e-12, atol=0)
    assert abs(float(smoothed) - float(want_plain)) > 1e-3

"""`rnnkit.viz.activations` on taggers and classifiers: the recorded per-word states of every layer and
direction against the model's own forward (its fused, batched, padded kernels) and against torch.nn
run on the same weights; the predictions against the model's own outputs and ``rnnkit predict``; the
CRF's marginals against brute-force enumeration; the attention weights against the pooling's equation
written in NumPy; the word properties against their definitions."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rnnkit.tasks import classify
from rnnkit.tasks.crf import CRF
from rnnkit.tasks.tag_api import LoadedTagger, predict_texts, split_words
from rnnkit.tasks.tag_api import load as load_tagger
from rnnkit.tasks.tag_data import Sentence
from rnnkit.tasks.tag_encode import encode, make_batch
from rnnkit.tasks.tag_model import Tagger
from rnnkit.viz import TokenActivations, activations
from rnnkit.viz.tokens import crf_marginals

SENTENCES = "The cat sat on the mat .\nI saw John in New York yesterday !\n\nWhy ?"
TEXTS = "Great phone , works well .\nIt broke after a day and support never answered .\nok"


def torch_layer(stack_sd: dict, k: int, x: torch.Tensor, hidden: int) -> torch.Tensor:
    """Layer k of a bidirectional LSTM stack (PyTorch names) run by torch.nn on ``x`` ``(T, 1, I)``."""
    ref = torch.nn.LSTM(x.shape[-1], hidden, bidirectional=True).double()
    ref.load_state_dict({f"{n}_l0{r}": stack_sd[f"{n}_l{k}{r}"].double() for n in
                         ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for r in ("", "_reverse")})
    return ref(x.double())[0].detach()


def test_tagger_states_match_its_own_forward_and_torch(tag_run):
    loaded = load_tagger(tag_run)
    model = loaded.model
    acts = activations(tag_run, SENTENCES)                       # a run folder: dispatched on its task
    assert isinstance(acts, TokenActivations) and acts.task == "tag"
    words = [split_words(line) for line in SENTENCES.split("\n") if line.strip()]
    assert acts.tokens == [w for s in words for w in s]
    assert acts.segments == [(0, 7), (7, 15), (15, 17)]
    L = model.rnn.num_layers
    assert [layer.label for layer in acts.layers] == [f"L{k}{d}" for k in range(1, L + 1) for d in "fb"]
    # the model's own forward over all the sentences in one padded batch (its kernels, its lengths)
    enc = encode([Sentence(w, ["_"] * len(w), []) for w in words], loaded.vocabs,
                 max_word_chars=loaded.config.max_word_chars, with_tags=False)
    batch = make_batch(enc, list(range(len(words))))
    with torch.no_grad():
        x = model.inputs(batch)                                             # (B, T, I)
        top, _ = model.rnn(x, lengths=batch.lengths)                        # (B, T, 2H)
        logits = model(batch)
    H = model.rnn.hidden_size
    sd = model.rnn.state_dict()
    for s, (a, b) in enumerate(acts.segments):
        n = b - a
        got_top = np.concatenate([acts.layers[-2].hidden[a:b], acts.layers[-1].hidden[a:b]], 1)
        np.testing.assert_allclose(got_top, top[s, :n].numpy(), atol=1e-5)
        np.testing.assert_allclose(acts.probs[a:b], torch.softmax(logits[s, :n], -1).numpy(), atol=1e-5)
        # every layer against torch.nn, fed the layer below as torch.nn computed it
        inp = x[s, :n].unsqueeze(1)
        for k in range(L):
            ref = torch_layer(sd, k, inp, H)                                # (n, 1, 2H)
            for d in range(2):
                layer = acts.layers[2 * k + d]
                np.testing.assert_allclose(layer.hidden[a:b], ref[:, 0, d * H:(d + 1) * H].numpy(),
                                           atol=1e-5, err_msg=layer.label)
                # the recorded gates explain the recorded states, in both directions: h = o tanh(c)
                o, c = layer.gates["o"][a:b], layer.cell[a:b]
                np.testing.assert_allclose(layer.hidden[a:b], o * np.tanh(c), atol=1e-5)
            inp = ref.float()
    # the predicted tags are what `rnnkit predict` says
    assert acts.predicted == [t for s in predict_texts(tag_run, SENTENCES.split("\n")) for _, t in s]
    assert acts.gold is None and acts.crf is False


def test_crf_marginals_match_brute_force():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(4, 3, dtype=torch.float64)
    crf = crf.double()
    mask = torch.ones(1, 4, dtype=torch.bool)
    seqs = list(itertools.product(range(3), repeat=4))
    with torch.no_grad():
        scores = torch.stack([crf.score(emissions[None], torch.tensor([s]), mask)[0] for s in seqs])
    p = torch.softmax(scores, 0)
    want = torch.zeros(4, 3, dtype=torch.float64)
    for prob, s in zip(p, seqs):
        for t, k in enumerate(s):
            want[t, k] += prob
    np.testing.assert_allclose(crf_marginals(crf, emissions).numpy(), want.numpy(), atol=1e-10)


def test_crf_tagger_records_marginals_and_viterbi(tag_run):
    base = load_tagger(tag_run)
    torch.manual_seed(1)
    model = Tagger(**{**base.model.config(), "crf": True, "layers": 1}).eval()
    loaded = LoadedTagger(model, base.vocabs, base.config, base.run)
    acts = activations(loaded, SENTENCES)
    assert acts.crf and [layer.label for layer in acts.layers] == ["L1f", "L1b"]
    np.testing.assert_allclose(acts.probs.sum(1), 1.0, atol=1e-5)
    sentences = [Sentence(split_words(line), [], []) for line in SENTENCES.split("\n") if line.strip()]
    for s in sentences:
        s.tags = ["_"] * len(s.words)
    enc = encode(sentences, base.vocabs, max_word_chars=base.config.max_word_chars, with_tags=False)
    batch = make_batch(enc, list(range(len(sentences))))
    best = model.decode(batch)
    assert acts.predicted == [base.vocabs.tags[i] for row in best for i in row]


def test_tagger_reads_gold_tags_and_properties_follow_them(tag_run):
    loaded = load_tagger(tag_run)
    gold = [Sentence(["Paris", "is", "big", "."], ["PROPN", "AUX", "ADJ", "PUNCT"], []),
            Sentence(["We", "saw", "it"], ["PRON", "VERB", "PRON"], [])]
    acts = activations(loaded, gold)
    assert acts.gold == ["PROPN", "AUX", "ADJ", "PUNCT", "PRON", "VERB", "PRON"]
    props, meanings = acts.properties(), acts.property_meanings()
    assert props["is a PRON"].tolist() == [0, 0, 0, 0, 1, 0, 1]
    assert "gold tag is PRON" in meanings["is a PRON"]
    assert props["position in sentence"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert props["capitalised"].tolist() == [1, 0, 0, 0, 1, 0, 0]
    r = acts.correlations()
    units = acts.unit_matrix()
    j = 5
    assert abs(r["is a PRON"][j] - np.corrcoef(units[:, j], props["is a PRON"])[0, 1]) < 1e-9


def test_classifier_states_attention_and_labels(classify_run):
    from rnnkit.tasks.classify.nbsvm import pad_ngrams, text_ngram_ids
    from rnnkit.tasks.classify.subwords import encode_subwords, pad_subwords
    loaded = classify.load(classify_run)
    model = loaded.model
    acts = activations(classify_run, TEXTS)
    assert acts.task == "classify" and acts.attention is not None
    texts = TEXTS.split("\n")
    assert acts.tokens == [w for t in texts for w in loaded.vocab.tokenize(t)]
    ids = [loaded.vocab.encode(t).astype(np.int64) for t in texts]
    lengths = torch.tensor([len(i) for i in ids])
    padded = torch.full((len(ids), int(lengths.max())), loaded.pad_id)
    for r, i in enumerate(ids):
        padded[r, :len(i)] = torch.from_numpy(i)
    assert model.subwords            # the default: each word's n-grams are part of its input
    sub = pad_subwords([encode_subwords(loaded.vocab.tokenize(t), model.subwords) for t in texts],
                       padded.shape[1])
    assert model.ngrams              # the default: the n-gram branch reads the text's word n-grams
    ng = pad_ngrams([text_ngram_ids(loaded.vocab.tokenize(t), model.ngrams) for t in texts])
    with torch.no_grad():
        top = model.encode(model.inputs(padded, sub), lengths)              # (T, B, 2H): its own forward
        logits = model(padded, lengths, sub, ng)
    np.testing.assert_allclose(acts.probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    assert [acts.labels[j] for j in acts.probs.argmax(1)] == acts.predicted
    assert acts.predicted == [p[0][0] for p in classify.predict(classify_run, texts)]
    H = model.hidden
    W, b = model.attn_proj.weight.detach().double().numpy(), model.attn_proj.bias.detach().double().numpy()
    v = model.attn_score.weight.detach().double().numpy()[0]
    for s, (a, e) in enumerate(acts.segments):
        n = e - a
        got = np.concatenate([acts.layers[-2].hidden[a:e], acts.layers[-1].hidden[a:e]], 1)
        np.testing.assert_allclose(got, top[:n, s].numpy(), atol=1e-5)
        # attention pooling: softmax over the text's words of v . tanh(W o + b)
        score = np.tanh(got.astype(np.float64) @ W.T + b) @ v
        want = np.exp(score - score.max())
        np.testing.assert_allclose(acts.attention[a:e], want / want.sum(), atol=1e-5)
    assert acts.layers[0].hidden.shape == (len(acts.tokens), H)
    assert acts.gold is None and "predicted label" in acts.property_meanings()[f"label {acts.predicted[0]}"]


def test_classifier_gold_labels_and_a_unidirectional_gru(classify_run):
    from rnnkit.tasks.classify.subwords import encode_subwords
    base = classify.load(classify_run)
    torch.manual_seed(0)
    model = classify.TextClassifier(**{**base.model.config(), "cell": "gru", "bidirectional": False,
                                       "pooling": "last", "layers": 1}).eval()
    loaded = type(base)(model, base.vocab, base.labels, base.config, base.device)
    lines = [f"good stuff\t{base.labels[1]}", f"bad , bad stuff\t{base.labels[0]}"]
    acts = activations(loaded, "\n".join(lines))
    assert acts.gold == [base.labels[1], base.labels[0]] and acts.tokens == ["good", "stuff", "bad", ",",
                                                                             "bad", "stuff"]
    assert [layer.label for layer in acts.layers] == ["L1"] and set(acts.layers[0].gates) == {"r", "z"}
    assert acts.attention is None and acts.unit_names()[:2] == ["L1 h0", "L1 h1"]
    props = acts.properties()
    assert props[f"label {base.labels[0]}"].tolist() == [0, 0, 1, 1, 1, 1]
    assert props["position in text"].tolist() == [0, 1, 0, 1, 2, 3]
    ref = torch.nn.GRU(model.embedding_size, model.hidden)
    ref.load_state_dict({f"{n}_l0": t for n, t in model.forward_layers[0].state_dict().items()
                         for n in [n.removesuffix("_l0")]})
    for a, e in acts.segments:
        ids = torch.from_numpy(base.vocab.encode(" ".join(acts.tokens[a:e])).astype(np.int64))
        sub = torch.from_numpy(encode_subwords(acts.tokens[a:e], model.subwords)).unsqueeze(0)
        want = ref(model.inputs(ids.unsqueeze(0), sub))[0][:, 0].detach().numpy()
        np.testing.assert_allclose(acts.layers[0].hidden[a:e], want, atol=1e-5)


def test_bad_inputs_are_named(tag_run, classify_run):
    with pytest.raises(ValueError, match="no words to tag"):
        activations(tag_run, "\n \n")
    with pytest.raises(ValueError, match="no text to classify"):
        activations(classify_run, "")

"""The tagger's auxiliary columns (``--aux-cols``: XPOS, FEATS and DEPREL learnt beside UPOS): which columns
are chosen and read, their ids, and the training loss they add, against direct computations."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.tasks.tag import TagConfig, TagTask
from rnnkit.tasks.tag_api import choose_aux, load_tag_data
from rnnkit.tasks.tag_data import Sentence, TagDataError, read_tagged
from rnnkit.tasks.tag_encode import TagVocabs, encode, make_batch
from rnnkit.tasks.tag_model import Tagger
from rnnkit.train.config import TrainConfig


def _line(i, word, upos, xpos, feats, deprel):
    return f"{i}\t{word}\t{word.lower()}\t{upos}\t{xpos}\t{feats}\t0\t{deprel}\t_\t_"


# FEATS given on 4 of 6 words; a multiword token line, which is no word, in between
SENTS = [
    [("The", "DET", "DT", "Definite=Def|PronType=Art", "det"),
     ("cats", "NOUN", "NNS", "Number=Plur", "nsubj"),
     ("sleep", "VERB", "VBP", "Mood=Ind", "root")],
    [("Hi", "INTJ", "UH", "_", "root"),
     ("there", "ADV", "RB", "_", "advmod"),
     ("!", "PUNCT", ".", "Punct=1", "punct")],
]


def _conllu(sents, blank_feats=False, one_deprel=False):
    out = []
    for n, s in enumerate(sents):
        out.append(f"# sent_id = s{n}")
        if n == 0:
            out.append("1-2\tThecats\t_\t_\t_\t_\t_\t_\t_\t_")
        for i, (w, u, x, f, d) in enumerate(s, 1):
            out.append(_line(i, w, u, x, "_" if blank_feats and (n or i > 1) else f,
                             "dep" if one_deprel else d))
        out.append("")
    return "\n".join(out) + "\n"


def _read(tmp_path, text=None, name="train.conllu", **kw):
    p = tmp_path / name
    p.write_text(text if text is not None else _conllu(SENTS), encoding="utf-8")
    return read_tagged(p, **kw)


def _column(k):
    """Column k (1-based: 5 XPOS, 6 FEATS, 8 DEPREL) of SENTS, sentence by sentence."""
    return [[w[{5: 2, 6: 3, 8: 4}[k]] for w in s] for s in SENTS]


def test_auto_reads_xpos_feats_and_deprel_where_annotated(tmp_path):
    tf = _read(tmp_path)
    assert choose_aux([tf], "auto") == ["XPOS", "FEATS", "DEPREL"]
    assert [s.aux for s in tf.sentences] == [list(c) for c in zip(_column(5), _column(6), _column(8))]
    # FEATS on 1 word of 6: too sparse for auto; one DEPREL everywhere: nothing to learn; so XPOS
    # alone. Named explicitly, a column is kept
    sparse = _conllu(SENTS, blank_feats=True, one_deprel=True)
    tf = _read(tmp_path, sparse)
    assert choose_aux([tf], "auto") == ["XPOS"]
    assert [s.aux for s in tf.sentences] == [[c] for c in _column(5)]
    assert choose_aux([_read(tmp_path, sparse)], "feats,deprel") == ["FEATS", "DEPREL"]
    # the tag column is never auxiliary: tagging XPOS, auto learns FEATS and DEPREL beside it
    tf = _read(tmp_path, tag_col="xpos")
    assert choose_aux([tf], "auto") == ["FEATS", "DEPREL"]
    assert [s.tags for s in tf.sentences] == _column(5)


def test_named_columns_none_and_column_files(tmp_path):
    tf = _read(tmp_path)
    assert choose_aux([tf], "deprel, 5") == ["DEPREL", "XPOS"]
    assert [s.aux for s in tf.sentences] == [list(c) for c in zip(_column(8), _column(5))]
    tf = _read(tmp_path)
    assert choose_aux([tf], "none") == [] and all(s.aux == [] for s in tf.sentences)
    cols = _read(tmp_path, "a DT B-NP x\nb NN I-NP y\n\nc VB O z\n", name="train.txt")
    assert choose_aux([cols], "auto") == []                 # columns have no names to choose by
    assert choose_aux([cols], "2") == ["2"]
    assert [s.aux for s in cols.sentences] == [[["DT", "NN"]], [["VB"]]]


@pytest.mark.parametrize("spec, message", [
    ("upos", "--aux-cols names column 4, which is the tag column"),
    ("form", "--aux-cols names column 2, which is the word column"),
    ("colour", "--aux-cols 'colour': expected a name"),
    ("xpos,,feats", "--aux-cols 'xpos,,feats': expected comma-separated"),
    ("11", "--aux-cols '11': expected a name"),
])
def test_bad_aux_columns_are_named(tmp_path, spec, message):
    with pytest.raises(TagDataError, match=message):
        choose_aux([_read(tmp_path)], spec)


def test_a_named_column_without_values_is_refused(tmp_path):
    with pytest.raises(TagDataError, match=r"--aux-cols 'misc': column 10 has no value \(only '_'\)"):
        choose_aux([_read(tmp_path)], "xpos,misc")


def test_load_tag_data_reads_aux_for_training_only(tmp_path):
    (tmp_path / "x-train.conllu").write_text(_conllu(SENTS), encoding="utf-8")
    (tmp_path / "x-dev.conllu").write_text(_conllu(SENTS[:1]), encoding="utf-8")
    data = load_tag_data(TagConfig(data=str(tmp_path)))             # auto, the default
    assert data.aux_names == ["XPOS", "FEATS", "DEPREL"]
    assert data.train[0].aux == [_column(5)[0], _column(6)[0], _column(8)[0]] and data.dev[0].aux == []
    assert load_tag_data(TagConfig(data=str(tmp_path), aux_cols="none")).aux_names == []


def test_aux_ids_batches_and_the_vocabulary_file(tmp_path):
    train = [Sentence(["a", "b", "c"], ["X", "Y", "X"], [], [["p", "q", "_"], ["u", "u", "v"]]),
             Sentence(["b"], ["Y"], [], [["q"], ["_"]])]
    v = TagVocabs.build(train, aux_names=["XPOS", "FEATS"])
    assert v.aux_tags == [["p", "q"], ["u", "v"]]          # sorted, without "_"
    other = [Sentence(["a", "d"], ["X", "X"], [], [["r", "p"], ["v", "_"]])]   # r: a value training lacks
    enc = encode(train + other, v, max_word_chars=20)
    assert [a.tolist() for a in enc.aux] == [[[0, 1, -100], [0, 0, 1]], [[1], [-100]],
                                             [[-100, 0], [1, -100]]]
    batch = make_batch(enc, [1, 2])                         # lengths 1 and 2: the first is padded
    assert batch.aux.tolist() == [[[1, -100], [-100, 0]], [[-100, -100], [1, -100]]]
    # sentences without the columns (validation, prediction) encode none
    assert encode([Sentence(["a"], ["X"], [])], v, max_word_chars=20).aux is None
    assert encode(train, v, max_word_chars=20, with_tags=False).aux is None
    v.to_json(tmp_path / "vocab.json")
    back = TagVocabs.from_json(tmp_path / "vocab.json")
    assert (back.aux_names, back.aux_tags) == (["XPOS", "FEATS"], [["p", "q"], ["u", "v"]])
    # a vocabulary file written before auxiliary columns existed still loads, with none
    d = json.loads((tmp_path / "vocab.json").read_text())
    del d["aux_names"], d["aux_tags"]
    (tmp_path / "old.json").write_text(json.dumps(d))
    old = TagVocabs.from_json(tmp_path / "old.json")
    assert old.aux_tags == [] and old.words == v.words


def _aux_model_and_batch():
    train = [Sentence(["The", "cat", "sat", "."], ["D", "N", "V", "P"], [],
                      [["DT", "NN", "VBD", "."], ["Def", "Sing", "_", "_"]]),
             Sentence(["Dogs", "bark"], ["N", "V"], [], [["NNS", "VBP"], ["Plur", "_"]])]
    v = TagVocabs.build(train, aux_names=["XPOS", "FEATS"])
    torch.manual_seed(0)
    model = Tagger(len(v.words), len(v.chars), len(v.tags), embedding=8, char_embedding=6, char_hidden=5,
                   char_encoder="cnn", hidden=7, layers=2, aux_tags=[len(t) for t in v.aux_tags])
    enc = encode(train, v, max_word_chars=20)
    return model.double(), make_batch(enc, [0, 1])


def _cross_entropy(z, target):
    """Summed cross-entropy of logits ``z (B, T, K)`` against ``target (B, T)``, -100 skipped."""
    total = 0.0
    for b in range(z.shape[0]):
        for t in range(z.shape[1]):
            if target[b, t] != -100:
                row = z[b, t] - z[b, t].max()
                total -= row[target[b, t]] - np.log(np.exp(row).sum())
    return total


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_aux_loss_against_numpy(weight):
    """The summed loss is the tags' cross-entropy plus ``weight`` times each auxiliary column's,
    each computed in NumPy from the shared recurrent states and that column's own output layer."""
    model, batch = _aux_model_and_batch()
    model.eval()
    with torch.no_grad():
        h = model.states(batch).numpy()
        loss, count = model.loss(batch, aux_weight=weight)
        plain = float(model.loss(batch)[0])              # the default weight: 0, tags alone
    heads = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in [model.out, *model.aux_out]]
    targets = [batch.tags.numpy(), *batch.aux.numpy()]
    parts = [_cross_entropy(h @ W.T + b, y) for (W, b), y in zip(heads, targets)]
    assert len(parts) == 3 and min(parts[1:]) > 0
    np.testing.assert_allclose(float(loss), parts[0] + weight * (parts[1] + parts[2]), rtol=1e-10)
    np.testing.assert_allclose(plain, parts[0], rtol=1e-10)
    assert int(count) == 6
    # the tags' logits (what prediction uses) do not depend on the auxiliary layers
    with torch.no_grad():
        before = model(batch)
        for m in model.aux_out:
            m.weight.add_(1.0)
        torch.testing.assert_close(model(batch), before, rtol=0, atol=0)


def test_the_task_adds_aux_losses_in_training_only():
    """`TagTask.loss` trains on the tags and the auxiliary columns at ``aux_weight``; a model in
    evaluation mode is scored on the tags alone."""
    cfg = TagConfig(word_dropout=0.0, aux_weight=0.7)
    task = TagTask(cfg, TrainConfig(steps=1))
    task.model, batch = _aux_model_and_batch()
    with torch.no_grad():
        task.model.train()
        torch.manual_seed(1)
        trained = task.loss(batch)[0]
        torch.manual_seed(1)                          # the same dropout masks
        want = task.model.loss(batch, aux_weight=0.7)[0]
        task.model.eval()
        scored, tags_only = task.loss(batch)[0], task.model.loss(batch)[0]
        with_aux = task.model.loss(batch, aux_weight=0.7)[0]
    torch.testing.assert_close(trained, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(scored, tags_only, rtol=1e-12, atol=0)
    assert float(with_aux) > float(tags_only) + 1e-3


def test_aux_weight_is_checked():
    with pytest.raises(ValueError, match="aux_weight must be >= 0, got -1"):
        TagConfig(aux_weight=-1.0)


def test_resuming_with_other_aux_columns_is_refused(tmp_path):
    """A run resumed on data whose ``auto`` columns differ from the run's own (its vocabulary file
    names them) is refused by name, not trained with its output layers on the wrong columns."""
    (tmp_path / "x-train.conllu").write_text(_conllu(SENTS), encoding="utf-8")
    sents = load_tag_data(TagConfig(data=str(tmp_path), aux_cols="xpos")).train
    TagVocabs.build(sents, aux_names=["XPOS"]).to_json(tmp_path / "vocab.json")

    class Run:
        def require(self, name):
            return tmp_path / name

    task = TagTask(TagConfig(data=str(tmp_path)), TrainConfig(steps=1))      # auto: three columns
    with pytest.raises(ValueError, match=r"gives the columns \['XPOS', 'FEATS', 'DEPREL'\], but the "
                                         r"run was trained with \['XPOS'\]"):
        task.load_data(Run(), None)
    task = TagTask(TagConfig(data=str(tmp_path), aux_cols="xpos"), TrainConfig(steps=1))
    task.load_data(Run(), None)
    assert task.vocabs.aux_names == ["XPOS"] and task.train.aux is not None

"""The tagger after (and around) training: its data splits, loading a run, scoring a split, and
what ``rnnkit evaluate`` / ``rnnkit predict`` call.

>>> from rnnkit.tasks import base
>>> from rnnkit.tasks.tag import TagTask
>>> base.train(TagTask, data="../shared/data/ud-english-ewt", minutes=15, out="runs/ewt")
>>> evaluate("runs/ewt")                      # the run's test split: accuracy, per-tag numbers
>>> predict_texts("runs/ewt", ["The cat sat on the mat ."])
>>> predict_file("runs/ewt", "in.conllu", "out.conllu")
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.tasks.tag import TagConfig, TagTask
from rnnkit.tasks.tag_data import (CONLLU_COLUMNS, Sentence, TagDataError, TagFile, find_splits, read_aux,
                                   read_tagged, tagged_text)
from rnnkit.data.padded import BucketBatcher
from rnnkit.tasks.tag_encode import EncodedSplit, TagVocabs, encode, make_batch
from rnnkit.tasks.tag_metrics import is_bio, span_scores, tag_scores
from rnnkit.tasks.tag_model import UNK, Tagger
from rnnkit.train import RunFolder, RunFolderError
from rnnkit.train.checkpoint import BEST, CONFIG, VOCAB

EVAL_BATCH = 128
#: raw text to words: words (with inner hyphens, apostrophes, dots, commas: "U.S", "3,000", "don't")
#: or single other characters (punctuation)
_WORDS = re.compile(r"\w+(?:[-'\u2019.,]\w+)*|[^\w\s]")


# -- data ---------------------------------------------------------------------------------------
@dataclass
class TagData:
    name: str
    train: list[Sentence]
    dev: list[Sentence]
    train_name: str
    dev_name: str
    tag_column: str
    test_path: str | None
    format: str
    aux_names: list[str]        # the auxiliary columns read into the training sentences' ``aux``


def _read(path, cfg: TagConfig, need_tags: bool = True) -> TagFile:
    return read_tagged(path, fmt=cfg.format, word_col=cfg.word_col, tag_col=cfg.tag_col,
                       encoding=cfg.encoding, errors=cfg.errors, need_tags=need_tags)


def column_name(tf: TagFile, index: int | None = None) -> str:
    index = tf.tag_index if index is None else index
    if tf.format == "conllu":
        return CONLLU_COLUMNS[index].upper()
    return str(index + 1)


#: the CoNLL-U columns ``--aux-cols auto`` learns beside the tags, where the training data has them
AUTO_AUX = ("xpos", "feats", "deprel")


def choose_aux(train: list[TagFile], spec: str) -> list[str]:
    """Read the auxiliary columns ``spec`` names into ``train``'s sentences; return their names
    (CoNLL-U's in capitals, numbers for column files). ``none``: no column. ``auto``: CoNLL-U's XPOS,
    FEATS and DEPREL (not the tag column), each kept where at least half the training words have a value
    (not ``_``) and the values are at least two; column files: none. Otherwise comma-separated names
    or numbers, each kept as named."""
    spec = str(spec).strip()
    first = train[0]
    if spec.lower() in ("none", ""):
        return []
    if spec.lower() == "auto":
        if first.format != "conllu":
            return []
        names = [c for c in AUTO_AUX if CONLLU_COLUMNS.index(c) not in (first.tag_index, first.word_index)]
    else:
        names = [c.strip() for c in spec.split(",")]
        if any(not c for c in names):
            raise TagDataError(f"{first.path}: --aux-cols {spec!r}: expected comma-separated column "
                               f"names or numbers, 'auto' or 'none'")
    for tf in train:
        read_aux(tf, names)
    keep = []
    for k in range(len(names)):
        values = [v for tf in train for s in tf.sentences for v in s.aux[k]]
        given = [v for v in values if v != "_"]
        if spec.lower() == "auto":
            if 2 * len(given) >= len(values) and len(set(given)) >= 2:
                keep.append(k)
        elif not given:
            raise TagDataError(f"{first.path}: --aux-cols {names[k]!r}: column "
                               f"{first.aux_indices[k] + 1} has no value (only '_') in the training "
                               f"data; expected values to learn")
        else:
            keep.append(k)
    for tf in train:
        for s in tf.sentences:
            s.aux = [s.aux[k] for k in keep]
    return [column_name(first, first.aux_indices[k]) for k in keep]


def _read_all(paths, cfg: TagConfig, need_tags: bool = True) -> list[TagFile]:
    return [_read(p, cfg, need_tags) for p in paths]


def load_tag_data(cfg: TagConfig) -> TagData:
    """The training and validation sentences ``cfg`` names (a folder's files, or explicit ones)."""
    if cfg.data is None:
        raise ValueError("data: give --data, a folder with *train*/*dev*/*test* files (UD: "
                         "xx_yyy-ud-train.conllu) or a training file")
    path = Path(cfg.data)
    if not path.exists():
        raise FileNotFoundError(f"data: {cfg.data!r} does not exist; expected a folder or a file")
    found = find_splits(path) if path.is_dir() else {"train": [path]}
    dev_paths = [Path(cfg.dev)] if cfg.dev else found.get("dev")
    test_paths = [Path(cfg.test)] if cfg.test else found.get("test")
    train = _read_all(found["train"], cfg)
    aux_names = choose_aux(train, cfg.aux_cols)
    train_sents = [s for tf in train for s in tf.sentences]
    train_name = ", ".join(str(p) for p in found["train"])
    if dev_paths:
        dev_sents = [s for tf in _read_all(dev_paths, cfg) for s in tf.sentences]
        dev_name = ", ".join(p.name for p in dev_paths)
    else:
        n = max(1, int(round(cfg.dev_fraction * len(train_sents))))
        if n >= len(train_sents):
            raise ValueError(f"{train_name}: {len(train_sents)} sentence(s) cannot be split into "
                             f"training and validation; give a --dev file")
        train_sents, dev_sents = train_sents[:-n], train_sents[-n:]
        dev_name = f"the last {n:,} sentences of {found['train'][-1].name}"
    return TagData(name=path.name, train=train_sents, dev=dev_sents, train_name=train_name,
                   dev_name=dev_name, tag_column=column_name(train[0]),
                   test_path=None if not test_paths else ", ".join(str(p) for p in test_paths),
                   format=train[0].format, aux_names=aux_names)


# -- a run --------------------------------------------------------------------------------------
@dataclass
class LoadedTagger:
    model: Tagger
    vocabs: TagVocabs
    config: TagConfig
    run: Path


def load(run, device="cpu") -> LoadedTagger:
    """The run's best-by-validation model (eval mode, on ``device``) and vocabularies."""
    if isinstance(run, LoadedTagger):
        return run
    folder = RunFolder(run)
    cfg, _, model_args = TagTask.read_configs(folder)
    vocabs = TagVocabs.from_json(folder.require(VOCAB))
    try:
        model = Tagger(**model_args)
    except (TypeError, ValueError) as exc:
        raise RunFolderError(f"{folder / CONFIG}: bad model arguments {model_args}: {exc}") from None
    folder.load_weights(BEST, model)
    return LoadedTagger(model.to(device).eval(), vocabs, cfg, folder.path)


def tag_ids(model: Tagger, split: EncodedSplit, device="cpu", batch_size: int = EVAL_BATCH):
    """Predicted tag ids per sentence of ``split`` and, with gold tags, the summed loss and its count."""
    was_training = model.training
    model.eval()
    preds: list[list[int]] = [[] for _ in range(len(split))]
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            # sorted by length: least padding; results go back by index
            for idx in BucketBatcher(split.lengths, batch_size, shuffle=False).batches():
                batch = make_batch(split, idx).to(device)
                logits = model(batch)
                if batch.tags is not None:
                    if model.crf is not None:
                        ll = model.crf.log_likelihood(logits, batch.tags.clamp(min=0), batch.mask)
                        total -= float(ll.sum())
                    else:
                        total += float(torch.nn.functional.cross_entropy(
                            logits.flatten(0, 1), batch.tags.flatten(), reduction="sum", ignore_index=-100))
                    count += int(batch.lengths.sum())
                for i, p in zip(idx, model.decode(batch, logits)):
                    preds[i] = p
    finally:
        model.train(was_training)
    return preds, total, count


def score_split(model: Tagger, split: EncodedSplit, sentences: list[Sentence], vocabs: TagVocabs, *,
                device="cpu", per_tag: bool = False) -> dict:
    """Loss (per word), token accuracy, accuracy on words outside the word vocabulary, and span
    precision/recall/F1 for BIO tags (per tag and per span type with ``per_tag``)."""
    ids, total, count = tag_ids(model, split, device)
    gold = [s.tags for s in sentences]
    pred = [[vocabs.tags[i] for i in p] for p in ids]
    scores = tag_scores(gold, pred)
    oov = [(g == p) for s, w, gs, ps in zip(sentences, split.words, gold, pred)
           for i, g, p in zip(w, gs, ps) if i == UNK]
    r = {"loss": total / max(1, count), "accuracy": scores["accuracy"], "words": scores["tokens"],
         "sentences": len(sentences), "oov_words": len(oov)}
    if oov:   # accuracy on words without an embedding of their own (absent when there are none)
        r["oov_accuracy"] = sum(oov) / len(oov)
    if is_bio(vocabs.tags):
        spans = span_scores(gold, pred)
        r.update(precision=spans["precision"], recall=spans["recall"], f1=spans["f1"])
        if per_tag:
            r["span_types"] = spans["types"]
    if per_tag:
        r["tags"] = scores["tags"]
    r["unknown_tags"] = dict(split.unknown_tags)
    return r


# -- rnnkit evaluate ----------------------------------------------------------------------------
def evaluate(run, data: str | None = None, *, split: str | None = None, encoding: str | None = None,
             errors: str | None = None, device="cpu", **_) -> dict:
    """Metrics of a run on ``data``: a tagged file (all of it), or a folder (its ``split``: test by
    default, or train/val/all); without ``data``, the run's own data's test split (else its
    validation data)."""
    t = load(run, device)
    cfg = t.config
    overrides = {k: v for k, v in (("encoding", encoding), ("errors", errors)) if v is not None}
    if overrides:
        cfg = TagConfig(**{**cfg.__dict__, **overrides})
    paths = _eval_paths(cfg, data, split)
    sentences: list[Sentence] = []
    for p in paths:
        sentences += _read(p, cfg).sentences
    enc = encode(sentences, t.vocabs, max_word_chars=cfg.max_word_chars)
    r = score_split(t.model, enc, sentences, t.vocabs, device=device, per_tag=True)
    return {"data": ", ".join(str(p) for p in paths), "split": split or "test", **r}


def _eval_paths(cfg: TagConfig, data: str | None, split: str | None) -> list:
    if split not in (None, "all", "val", "train", "test"):
        raise ValueError(f"split: expected all, val, train or test, got {split!r}")
    source = data if data is not None else cfg.data
    if source is None:
        raise ValueError("data: the run names no data and none was given; expected a tagged file or a folder")
    path = Path(source)
    if data is not None and path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"data: {source!r} does not exist; expected a tagged file or a folder")
    found = find_splits(path) if path.is_dir() else {"train": [path]}
    if data is None:     # the run's own files
        found.update({k: [Path(v)] for k, v in (("dev", cfg.dev), ("test", cfg.test)) if v})
    want = {None: ["test"], "test": ["test"], "val": ["dev"], "train": ["train"],
            "all": ["train", "dev", "test"]}[split]
    if split is None and "test" not in found:
        want = ["dev"]
    missing = [w for w in want if w not in found]
    if missing:
        raise ValueError(f"evaluate: {source} has no {missing[0]} file (found {sorted(found)}); "
                         f"give --data FILE or another --split")
    return [p for w in want for p in found[w]]


def format_evaluation(r: dict) -> str:
    oov = (f", on words outside the vocabulary ({r['oov_words']:,}) {r['oov_accuracy']:.4f}"
           if "oov_accuracy" in r else "")
    text = (f"{r['data']} ({r['sentences']:,} sentences, {r['words']:,} words): token accuracy "
            f"{r['accuracy']:.4f}{oov}, loss {r['loss']:.4f}\n")
    if "f1" in r:
        text += (f"spans: precision {r['precision']:.4f}, recall {r['recall']:.4f}, "
                 f"F1 {r['f1']:.4f}\n")
    text += _table("tag", r.get("tags", {}))
    if "span_types" in r:
        text += _table("span type", r["span_types"])
    if r.get("unknown_tags"):
        n = sum(r["unknown_tags"].values())
        text += (f"note: {n:,} words have a gold tag the run never saw in training (counted wrong): "
                 f"{sorted(r['unknown_tags'])[:20]}\n")
    return text


def _table(what: str, rows: dict) -> str:
    if not rows:
        return ""
    width = max(len(what), *(len(k) for k in rows))
    lines = [f"{what:<{width}}  precision  recall     f1  support"]
    for k, v in rows.items():
        lines.append(f"{k:<{width}}  {v['precision']:9.4f}  {v['recall']:6.4f}  {v['f1']:.4f}  "
                     f"{v['support']:7,}")
    return "\n".join(lines) + "\n"


# -- rnnkit predict -----------------------------------------------------------------------------
def split_words(text: str) -> list[str]:
    """Raw text to words: spaces separate, punctuation stands alone (``"sat."`` -> ``sat .``)."""
    return _WORDS.findall(text)


def _tag(t: LoadedTagger, sentences: list[Sentence], device) -> list[list[str]]:
    enc = encode(sentences, t.vocabs, max_word_chars=t.config.max_word_chars, with_tags=False)
    ids, _, _ = tag_ids(t.model, enc, device)
    return [[t.vocabs.tags[i] for i in p] for p in ids]


def predict_texts(run, texts: list[str], *, device="cpu") -> list[list[tuple[str, str]]]:
    """Each text's ``(word, tag)`` pairs (an empty text has none)."""
    t = load(run, device)
    words = [split_words(x) for x in texts]
    nonempty = [Sentence(w, ["_"] * len(w), []) for w in words if w]
    tags = iter(_tag(t, nonempty, device) if nonempty else [])
    return [list(zip(w, next(tags))) if w else [] for w in words]


def predict_file(run, input_path, output_path=None, *, device="cpu", out=None) -> list[list[str]]:
    """Tag ``input_path`` and write it with the tag column filled in (a words-only column file gets
    a tag column). A file in the format the run was trained on is read with the run's column
    choices; a file in the other format with that format's defaults."""
    t = load(run, device)
    cfg = t.config
    if str(input_path) == "-":
        raise ValueError("predict --input -: tagging a file needs a file path (CoNLL-U or columns)")
    trained_format = RunFolder(t.run).read_config().get("data_format")
    tf = read_tagged(input_path, fmt=cfg.format, encoding=cfg.encoding, errors=cfg.errors, need_tags=False)
    if tf.format == trained_format and (cfg.word_col or cfg.tag_col) and tf.columns > 1:
        tf = read_tagged(input_path, fmt=tf.format, word_col=cfg.word_col, tag_col=cfg.tag_col,
                         encoding=cfg.encoding, errors=cfg.errors, need_tags=False)
    preds = _tag(t, tf.sentences, device)
    text = tagged_text(tf, preds)
    if output_path is not None:
        from rnnkit.data.atomic import atomic_write
        atomic_write(output_path, text)
    else:
        (out or sys.stdout).write(text)
    return preds

"""Text classification (N→1) as a `rnnkit.tasks.base.Task`: data, defaults, model, batches, loss,
metrics; and, on a finished run, ``evaluate_run`` (accuracy, macro-F1, per-class scores, confusion
matrix) and ``predict`` (labels with probabilities).

Batches are bucketed by length (`rnnkit.data.padded.BucketBatcher`) and padded with the texts'
lengths; validation is the held-out part (or the dev file), its accuracy picks the best weights and
drives early stopping. The run folder holds ``vocab.json`` (the tokens) and ``labels.json`` (the
classes, in the order of the model's outputs).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rnnkit.data import load_vocab, read_text
from rnnkit.data.padded import BucketBatcher, pad_batch
from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks.base import Task
from rnnkit.tasks.bucketed import BucketedBatches
from rnnkit.tasks.classify.config import ClassifyConfig
from rnnkit.tasks.classify.ensemble import ClassifierEnsemble, build_classifier
from rnnkit.tasks.classify.data import (
    Examples, build_vocab, check_known_labels, encode, read_labelled, read_splits, sort_labels)
from rnnkit.tasks.classify.metrics import classification_metrics, format_report
from rnnkit.tasks.classify.model import TextClassifier
from rnnkit.tasks.classify.nbsvm import fit_nb_logistic, pad_ngrams, text_ngram_ids
from rnnkit.tasks.classify.subwords import encode_subwords, pad_subwords
from rnnkit.train import RunFolder, RunFolderError
from rnnkit.train.checkpoint import BEST, VOCAB
from rnnkit.train.config import DEFAULT_MINUTES

LABELS = "labels.json"
#: the defaults a run gets for what it leaves unset (measured: benchmarks/bench_classify.py)
DEFAULT_EPOCHS = 30        # replaces the trainer's default budget of DEFAULT_MINUTES minutes
DEFAULT_PATIENCE = 8       # validations (one per epoch) without a better accuracy
DEFAULT_LR = 2e-3
EVAL_BATCH = 256


class ClassifyTask(BucketedBatches, Task):
    """Text classification: a label for each text."""

    name = "classify"
    Config = ClassifyConfig
    primary_metric = "accuracy"
    higher_is_better = True
    count_unit = "texts"

    # -- building ---------------------------------------------------------------------------------
    def load_data(self, run, progress):
        cfg = self.config
        self.splits = read_splits(cfg)
        if run is not None:
            self.vocab = load_vocab(run.require(VOCAB))
            self.labels = read_labels(run)
        else:
            self.vocab = build_vocab(cfg, self.splits.train.texts)
            self.labels = sort_labels(self.splits.train.labels)
        self.train_x, self.train_sub, self.train_ng, self.train_y = self._encode(self.splits.train,
                                                                                 "training texts")
        self.val_x, self.val_sub, self.val_ng, self.val_y = self._encode(self.splits.val, "validation texts")

    def _encode(self, ex: Examples, what: str):
        check_known_labels(ex, self.labels)
        index = {lab: i for i, lab in enumerate(self.labels)}
        kw = self.config.model_kwargs()
        ids, sub, ng = encode_inputs(self.vocab, ex, self.config.max_len, kw["subwords"], kw["ngrams"],
                                     what=what)
        return ids, sub, ng, np.array([index[y] for y in ex.labels], dtype=np.int64)

    def choose(self, echo):
        """The classifier's defaults for what the trainer leaves to the task: an epoch budget instead
        of the trainer's minutes (so a run is the same on any machine), early stopping, one validation
        per epoch and the learning rate."""
        tr, notes = self.train_config, []
        steps_per_epoch = len(BucketBatcher([len(s) for s in self.train_x], self.config.batch_size))
        changes: dict = {}
        if tr.budget == ("minutes", DEFAULT_MINUTES):
            changes.update(minutes=None, epochs=float(DEFAULT_EPOCHS))
            notes.append(f"{DEFAULT_EPOCHS} epochs")
        if tr.patience is None:
            changes["patience"] = DEFAULT_PATIENCE
            notes.append(f"early stopping after {DEFAULT_PATIENCE} validations without progress")
        if tr.eval_every is None:
            changes["eval_every"] = steps_per_epoch
        if tr.threads is None:
            # the classifier's products are small ((B, 4H) x (H, 4H)): a second thread gains little
            # alone and, on cores other jobs share, its spin-waits made steps 20x slower (measured)
            changes["threads"] = 1
            notes.append("1 CPU thread")
        if tr.lr is None:
            changes["lr"] = DEFAULT_LR
            notes.append(f"lr {DEFAULT_LR:g}")
        self.train_config = dataclasses.replace(tr, **changes)
        if notes:
            echo("classifier defaults: " + ", ".join(notes) + " (give --epochs/--minutes/--steps, "
                 "--patience, --lr, --threads to choose)")

    def build_model(self):
        model = build_classifier(len(self.vocab), len(self.labels), **self.config.model_kwargs())
        if model.ngrams:
            # the linear branch is fitted once, on the training part, before the recurrent model
            # trains (a resumed run then loads the checkpoint's, the same)
            table, bias, C, losses = fit_nb_logistic(self.train_ng, self.train_y, self.val_ng, self.val_y,
                                                     model.ngrams, len(self.labels))
            for m in (model.members if isinstance(model, ClassifierEnsemble) else [model]):
                m.nb.table.copy_(table)
                m.nb.bias.copy_(bias)
            self.nb_choice = {"C": C, "validation_log_loss": losses}
        return model

    def describe_data(self):
        s, n = self.splits, sum(p.numel() for p in self.model.parameters())
        test = f", {len(s.test):,} test" if s.test is not None else ""
        return (f"data: {s.source}: {len(s.train):,} training, {len(s.val):,} validation{test} texts; "
                f"{len(self.labels)} classes {self.labels[:10]}; vocabulary {len(self.vocab):,} "
                f"{self.config.level}s; model: {n:,} parameters on {self.device}")

    def save_artifacts(self, run):
        self.vocab.to_json(run / VOCAB)
        run.write_json(LABELS, {"labels": self.labels})

    def start(self):
        self.start_batches([len(s) for s in self.train_x], self.config.batch_size, self.train_config.seed)

    # -- the trainer's protocol -------------------------------------------------------------------
    def next_batch(self):
        idx = self.next_indices()
        ids, lengths = pad_batch([self.train_x[i] for i in idx], self.vocab_pad_id)
        y = torch.from_numpy(self.train_y[idx])
        ng = None if self.train_ng is None else pad_ngrams([self.train_ng[i] for i in idx]).to(self.device)
        sub = None
        if self.train_sub is not None:
            sub = pad_subwords([self.train_sub[i] for i in idx], ids.shape[1])      # (B, T, K)
        if self.config.word_dropout:
            # (B, T); padding is masked anyway
            ids = ids.masked_fill(torch.rand(ids.shape) < self.config.word_dropout, self.vocab.unk_id)
            if sub is not None:
                # a word's n-grams are dropped apart from its id: a word that keeps only its n-grams
                # teaches the model to read an unknown word's spelling, and one that keeps only its
                # id stops the n-grams from undoing the word dropout
                keep = torch.rand(ids.shape) >= self.config.word_dropout
                sub = sub * keep.unsqueeze(2)
        if sub is not None:
            sub = sub.to(self.device, non_blocking=True)
        return (ids.to(self.device, non_blocking=True), lengths, sub, ng,
                y.to(self.device, non_blocking=True))

    @property
    def vocab_pad_id(self) -> int:
        return getattr(self.vocab, "pad_id", 0)   # a CharVocab has no <pad>: padding is masked anyway

    def loss(self, batch):
        ids, lengths, sub, ng, y = batch
        if isinstance(self.model, ClassifierEnsemble):
            # each member learns from its own loss (the mean over members keeps the scale of one
            # model's); the averaged prediction is only for validation and use
            logits = self.model.member_logits(ids, lengths, sub, ng)     # (K, B, C)
            K, B, C = logits.shape
            loss = F.cross_entropy(logits.reshape(K * B, C), y.repeat(K), reduction="sum") / K
            return loss, len(y)
        # the recurrent model learns from its own loss; the n-gram branch is fitted already
        logits, _ = self.model.branch_logits(ids, lengths, sub, ng)      # (B, C)
        return F.cross_entropy(logits, y, reduction="sum"), len(y)

    def evaluate(self):
        """The validation metrics that select the weights and stop training. With an n-gram branch
        they are the recurrent model's own (the branch is fitted before training and never changes,
        so the mixture's accuracy would stop the model while it is still weak, whenever the branch
        alone does well); the mixture's, what prediction uses, is ``mixed_accuracy``."""
        probs = predict_proba(self.model, self.val_x, self.vocab_pad_id, self.device,
                              subwords=self.val_sub, ngrams=self.val_ng, recurrent_only=True)
        loss = float(F.nll_loss(torch.log(probs.clamp_min(1e-12)), torch.from_numpy(self.val_y)))
        m = classification_metrics(self.val_y, probs.argmax(1).numpy(), self.labels)
        out = {"loss": loss, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        if self.model.ngrams:
            mixed = predict_proba(self.model, self.val_x, self.vocab_pad_id, self.device,
                                  subwords=self.val_sub, ngrams=self.val_ng)
            out["mixed_accuracy"] = float((mixed.argmax(1).numpy() == self.val_y).mean())
        return out

    def summary(self, best):
        return (f"best validation: accuracy {best['accuracy']:.4f}, macro-F1 {best['macro_f1']:.4f} "
                f"at step {best['step']}")

    # -- after training: rnnkit evaluate / predict ------------------------------------------------
    @classmethod
    def evaluate_run(cls, run, data=None, *, split=None, encoding="utf-8", errors="strict",
                     device="cpu", **options):
        """Metrics of the run's best weights on ``data`` (a labelled file: all of it; a folder: its
        ``split``), or, without ``data``, on the run's own data's ``split`` (default: the test part,
        else the validation part)."""
        loaded = load(run, device)
        cfg = loaded.config
        if data is not None and Path(data).is_file():
            if split not in (None, "all"):
                raise ConfigError(f"evaluate: --split {split} needs a folder or the run's own data; "
                                 f"{data} is one file (all of it is evaluated)")
            ex = read_labelled(data, text_col=cfg.text_col, label_col=cfg.label_col,
                               delimiter=cfg.delimiter, encoding=encoding, errors=errors)
            split, source = "all", str(data)
        else:
            cfg = dataclasses.replace(cfg, data=data or cfg.data, encoding=encoding, errors=errors)
            splits = read_splits(cfg)
            split = split or ("test" if splits.test is not None else "val")
            if split == "all":
                ex = Examples()
                for part in (splits.train, splits.val, splits.test):
                    if part is not None:
                        ex.extend(part)
            else:
                ex = getattr(splits, split)
                if ex is None:
                    raise ConfigError(f"evaluate: {cfg.data} has no test part (--test-fraction 0 and no "
                                      f"test file); choose --split val, train or all")
            source = cfg.data
        check_known_labels(ex, loaded.labels)
        x, sub, ng = encode_inputs(loaded.vocab, ex, cfg.max_len, loaded.model.subwords,
                                   loaded.model.ngrams, what="texts")
        index = {lab: i for i, lab in enumerate(loaded.labels)}
        gold = np.array([index[y] for y in ex.labels], dtype=np.int64)
        probs = predict_proba(loaded.model, x, loaded.pad_id, loaded.device, subwords=sub, ngrams=ng)
        m = classification_metrics(gold, probs.argmax(1).numpy(), loaded.labels)
        return {"data": source, "split": split, **m}

    @classmethod
    def format_evaluation(cls, r):
        return f"{r['data']} ({r['split']}):\n" + format_report(r)

    @classmethod
    def predict(cls, run, inputs, *, top=None, device="cpu", **options):
        """For each text, its labels by falling probability: ``[(label, p), ...]`` (``top`` of them)."""
        loaded = load(run, device)
        ex = Examples(list(inputs), [loaded.labels[0]] * len(inputs),
                      [("<input>", i + 1) for i in range(len(inputs))])
        if not inputs:
            raise ConfigError("predict: no texts given; expected one or more texts")
        for text, (_, n) in zip(ex.texts, ex.where):
            if not text.strip():
                raise DataError(f"predict: input {n} is empty; expected a text to classify")
        x, sub, ng = encode_inputs(loaded.vocab, ex, loaded.config.max_len, loaded.model.subwords,
                                   loaded.model.ngrams, what="texts")
        probs = predict_proba(loaded.model, x, loaded.pad_id, loaded.device, subwords=sub, ngrams=ng)
        k = len(loaded.labels) if top is None else max(1, min(top, len(loaded.labels)))
        out = []
        for row in probs.tolist():
            order = sorted(range(len(row)), key=lambda c: -row[c])[:k]
            out.append([(loaded.labels[c], row[c]) for c in order])
        return out

    @classmethod
    def format_prediction(cls, inputs, predictions):
        lines = []
        for text, pred in zip(inputs, predictions):
            label, p = pred[0]
            rest = "".join(f"  {lab} {q:.4f}" for lab, q in pred[1:])
            lines.append(f"{label}\t{p:.4f}{rest}\t{text}\n")
        return "".join(lines)

    @classmethod
    def predict_file(cls, run, input_path, output_path=None, *, device="cpu"):
        """``rnnkit predict RUN --input FILE``: one text per line (blank lines skipped); prints or writes
        ``label<TAB>probability  other labels<TAB>text`` per line."""
        import sys

        from rnnkit.data.atomic import atomic_write
        text = sys.stdin.read() if str(input_path) == "-" else read_text(input_path, allow_empty=True)
        inputs = [line.strip() for line in text.split("\n") if line.strip()]
        if not inputs:
            raise DataError(f"predict: input file {str(input_path)!r} is empty; expected one text per "
                            f"line")
        preds = cls.predict(run, inputs, device=device)
        shown = cls.format_prediction(inputs, preds)
        if output_path is not None:
            atomic_write(output_path, shown)
        else:
            sys.stdout.write(shown)
        return preds


def encode_inputs(vocab, ex: Examples, max_len: int | None, subwords: int, ngrams: int = 0, *,
                  what: str = "texts"
                  ) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[np.ndarray] | None]:
    """What the model reads of each text: its token ids ``(T,)`` (`encode`); for a model with
    ``subwords`` buckets, its words' character n-gram ids ``(T, K)``; for one with ``ngrams`` buckets,
    its distinct word n-gram ids ``(N,)`` (`rnnkit.tasks.classify.nbsvm`) (None without)."""
    ids = encode(vocab, ex, max_len, what=what)
    sub = ng = None
    if subwords or ngrams:
        tokens = [vocab.tokenize(t)[:len(x)] for t, x in zip(ex.texts, ids)]
        if subwords:
            cache: dict = {}
            sub = [encode_subwords(t, subwords, cache) for t in tokens]
        if ngrams:
            ng = [text_ngram_ids(t, ngrams) for t in tokens]
    return ids, sub, ng


@torch.no_grad()
def predict_proba(model: TextClassifier, seqs: list[np.ndarray], pad_id: int,
                  device: torch.device | str = "cpu", batch_size: int = EVAL_BATCH, *,
                  subwords: list[np.ndarray] | None = None,
                  ngrams: list[np.ndarray] | None = None, recurrent_only: bool = False) -> torch.Tensor:
    """Class probabilities ``(N, C)`` (CPU, float32) of ``seqs`` in their order, in length-sorted
    batches (``subwords``: each text's n-gram ids, for a model built with them; ``recurrent_only``:
    the recurrent model's own, without an n-gram branch); the model is left in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        out = torch.empty(len(seqs), model.num_classes)
        for idx in BucketBatcher([len(s) for s in seqs], batch_size, shuffle=False):
            ids, lengths = pad_batch([seqs[i] for i in idx], pad_id)
            sub = None if subwords is None else pad_subwords([subwords[i] for i in idx], ids.shape[1])
            ng = None if ngrams is None else pad_ngrams([ngrams[i] for i in idx]).to(device)
            score = model.recurrent_log_probs if recurrent_only else model
            logits = score(ids.to(device), lengths, None if sub is None else sub.to(device), ng)
            out[torch.from_numpy(idx)] = torch.softmax(logits.float(), 1).cpu()
        return out
    finally:
        model.train(was_training)


@dataclasses.dataclass
class LoadedClassifier:
    model: TextClassifier | ClassifierEnsemble
    vocab: object
    labels: list[str]
    config: ClassifyConfig
    device: torch.device

    @property
    def pad_id(self) -> int:
        return getattr(self.vocab, "pad_id", 0)


def read_labels(run: RunFolder) -> list[str]:
    d = run.read_json(LABELS)
    labels = d.get("labels") if isinstance(d, dict) else None
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise RunFolderError(f"{run / LABELS} is corrupt: expected {{\"labels\": [at least 2 strings]}}")
    return labels


def load(run, device="cpu") -> LoadedClassifier:
    """A finished run's model (best weights, eval mode), vocabulary, labels and configuration."""
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    cfg, _, model_args = ClassifyTask.read_configs(folder)
    vocab = load_vocab(folder.require(VOCAB))
    labels = read_labels(folder)
    model = build_classifier(**model_args)
    if model.num_classes != len(labels) or model.vocab_size != len(vocab):
        raise RunFolderError(f"{folder.path}: config.json's model ({model.vocab_size} tokens, "
                             f"{model.num_classes} classes) does not match {VOCAB} ({len(vocab)}) "
                             f"and {LABELS} ({len(labels)})")
    folder.load_weights(BEST, model)
    device = torch.device(device)
    model.to(device).eval()
    return LoadedClassifier(model, vocab, labels, cfg, device)

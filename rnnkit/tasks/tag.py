"""Sequence tagging (N -> N: a tag for every word) as a `rnnkit.tasks.base.Task`:
``rnnkit train --task tag --data PATH``.

Data: CoNLL-U (Universal Dependencies; UPOS by default, ``--tag-col xpos`` for XPOS) or CoNLL-2003
columns (`rnnkit.tasks.tag_data`), a folder with *train*/*dev*/*test* files or explicit files. Model:
`rnnkit.tasks.tag_model.Tagger` (words + characters -> BiLSTM stack -> dense, ``--crf`` for a CRF
layer). Metrics: token accuracy (the primary one), and span precision/recall/F1 for BIO/BIOES tags
(`rnnkit.tasks.tag_metrics`). After training: `rnnkit.tasks.tag_api` (evaluate, predict, files).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.cells import CELLS
from rnnkit.data.padded import BucketBatcher
from rnnkit.tasks.base import Task
from rnnkit.tasks.tag_data import FORMATS
from rnnkit.tasks.tag_encode import TagVocabs, encode, make_batch, split_long
from rnnkit.tasks.tag_model import CHAR_ENCODERS, UNK, Tagger
from rnnkit.train.checkpoint import VOCAB
from rnnkit.train.config import check_fields, option


@dataclass
class TagConfig:
    """What a tagger is trained on and what it is."""

    # data
    data: str | None = option(None, "a folder with *train*, *dev* and *test* files (UD: "
                                    "xx_yyy-ud-train.conllu) or a training file (CoNLL-U or columns)")
    dev: str | None = option(None, "validation file (none: the folder's *dev* file, else the last "
                                   "--dev-fraction of the training sentences)")
    test: str | None = option(None, "test file for `rnnkit evaluate` (none: the folder's *test* file)")
    format: str = option("auto", "file format (auto: .conllu files and 10-column tab-separated lines "
                                 "with IDs are CoNLL-U, others are columns)", choices=FORMATS)
    word_col: str | None = option(None, "the word column: a CoNLL-U name (form, lemma) or a 1-based "
                                        "number (none: FORM, or the first column)")
    tag_col: str | None = option(None, "the tag column: a CoNLL-U name (upos, xpos, deprel, ...), a "
                                       "1-based number or 'last' (none: UPOS, or the last column)")
    dev_fraction: float = option(0.1, "without a validation file: the share of training sentences "
                                      "held out (from the end)")
    encoding: str = option("utf-8", "text encoding of the data files")
    errors: str = option("strict", "undecodable bytes: strict (an error naming the offset), replace "
                                   "or ignore")
    aux_cols: str = option("auto", "further tag columns learnt beside --tag-col as extra training "
                                   "targets (an output layer each, trained, never predicted): "
                                   "comma-separated names or numbers, 'none', or 'auto' (CoNLL-U: "
                                   "XPOS, FEATS and DEPREL where the training file annotates them)")
    aux_weight: float = option(1.0, "the weight of each --aux-cols column's loss beside the tags'")
    max_len: int | None = option(None, "training sentences longer than this many words are cut into "
                                       "pieces (a warning counts them; none: no limit)")
    # words and characters
    lower: bool = option(True, "look words up lower-cased in the word embedding (the character "
                               "encoder sees them as written)")
    min_freq: int = option(1, "training words seen fewer times have no embedding of their own")
    word_dropout: float = option(0.25, "alpha of word dropout: in training a word becomes <unk> with "
                                       "probability alpha / (alpha + its count) (0: off)")
    max_word_chars: int = option(20, "characters spelled per word (a longer word keeps its first and "
                                     "last halves)")
    # model
    embedding: int = option(100, "word embedding width")
    char_encoder: str = option("cnn", "character-level word encoder: convolutions over character "
                                      "n-grams or a bidirectional LSTM", choices=CHAR_ENCODERS)
    char_widths: str = option("2,3,4,5", "cnn: the n-gram widths, comma-separated (each gets "
                                         "--char-hidden filters)")
    char_embedding: int = option(32, "character embedding width")
    char_hidden: int = option(64, "character encoder units (per direction for lstm)")
    cell: str = option("lstm", "recurrent cell of the sentence layers",
                       choices=lambda: tuple(sorted(CELLS)))
    hidden: int = option(200, "hidden units per direction and layer")
    layers: int = option(2, "stacked bidirectional layers")
    dropout: float = option(0.33, "dropout on the word representations, between layers and before "
                                  "the output")
    crf: bool = option(False, "a linear-chain CRF over the tags (Viterbi decoding)")
    label_smoothing: float = option(0.0, "training without --crf: the target gives this share of its "
                                         "probability evenly to all tags (0: off)")
    batch_size: int = option(64, "sentences per batch")

    def __post_init__(self):
        check_fields(self)
        owner = "TagConfig"
        for name in ("min_freq", "max_word_chars", "embedding", "char_embedding", "char_hidden",
                     "hidden", "layers", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{owner}: {name} must be >= 1, got {getattr(self, name)}")
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"{owner}: max_len must be >= 1 (or none), got {self.max_len}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{owner}: dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"{owner}: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.label_smoothing and self.crf:
            raise ValueError(f"{owner}: label_smoothing={self.label_smoothing} smooths the softmax's "
                             f"targets; the CRF (crf=True) scores whole tag sequences: use one of them")
        if self.aux_weight < 0:
            raise ValueError(f"{owner}: aux_weight must be >= 0, got {self.aux_weight}")
        if self.word_dropout < 0:
            raise ValueError(f"{owner}: word_dropout must be >= 0, got {self.word_dropout}")
        self.char_width_list()
        if not 0 < self.dev_fraction < 1:
            raise ValueError(f"{owner}: dev_fraction must be in (0, 1), got {self.dev_fraction}")

    def char_width_list(self) -> list[int]:
        """``char_widths`` as integers (a ValueError naming the option when it is not a list of them)."""
        try:
            widths = [int(w) for w in str(self.char_widths).split(",")]
        except ValueError:
            widths = []
        if not widths or min(widths) < 1:
            raise ValueError(f"TagConfig: char_widths must be comma-separated integers >= 1 "
                             f"(e.g. 2,3,4), got {self.char_widths!r}")
        return widths

    def model_kwargs(self) -> dict:
        return dict(embedding=self.embedding, char_embedding=self.char_embedding,
                    char_hidden=self.char_hidden, char_encoder=self.char_encoder,
                    char_widths=self.char_width_list(), cell=self.cell,
                    hidden=self.hidden, layers=self.layers, dropout=self.dropout, crf=self.crf)


class TagTask(Task):
    """Tag every word of a sentence (part of speech, named-entity BIO tags, ...)."""

    name = "tag"
    Config = TagConfig
    primary_metric = "accuracy"      # token accuracy on the validation data
    higher_is_better = True
    count_unit = "words"

    # -- building ---------------------------------------------------------------------------------
    def load_data(self, run, progress):
        from rnnkit.tasks.tag_api import load_tag_data
        cfg = self.config
        self.data = load_tag_data(cfg)
        train = self.data.train
        self.vocabs = (TagVocabs.from_json(run.require(VOCAB)) if run is not None else
                       TagVocabs.build(train, min_freq=cfg.min_freq, lower=cfg.lower,
                                       aux_names=self.data.aux_names))
        if self.vocabs.aux_names != self.data.aux_names:
            raise ValueError(f"{self.data.train_name}: --aux-cols {cfg.aux_cols} gives the columns "
                             f"{self.data.aux_names}, but the run was trained with "
                             f"{self.vocabs.aux_names}; resume with the run's own --aux-cols")
        pieces, cut = split_long(train, cfg.max_len)
        if cut:
            warnings.warn(f"{cut:,} training sentences are longer than --max-len {cfg.max_len} words "
                          f"and were cut into pieces", stacklevel=2)
        self.train = encode(pieces, self.vocabs, max_word_chars=cfg.max_word_chars)
        self.dev = encode(self.data.dev, self.vocabs, max_word_chars=cfg.max_word_chars)

    def check(self):
        tags = self.vocabs.tags
        if len(tags) < 2:
            raise ValueError(f"{self.data.train_name}: column {self.data.tag_column} holds a single "
                             f"tag ({tags[0]!r}) on every word; expected at least two to learn from "
                             f"(choose the tag column with --tag-col)")

    def build_model(self):
        v = self.vocabs
        return Tagger(len(v.words), len(v.chars), len(v.tags), aux_tags=[len(t) for t in v.aux_tags],
                      **self.config.model_kwargs())

    def describe_data(self):
        d, v = self.data, self.vocabs
        n = sum(p.numel() for p in self.model.parameters())
        words = sum(len(s) for s in d.train)
        aux = "".join(f", {len(t)} {name} values" for name, t in zip(v.aux_names, v.aux_tags))
        aux = f" (learnt beside them: {aux[2:]})" if aux else ""
        return (f"data: {d.name}: {len(d.train):,} training sentences ({words:,} words), "
                f"{len(d.dev):,} validation ({d.dev_name}); {len(v.tags)} tags in column "
                f"{d.tag_column}{aux}, {len(v.words):,} words, {len(v.chars):,} characters; model: "
                f"{n:,} parameters on {self.device}")

    def save_artifacts(self, run):
        self.vocabs.to_json(run / VOCAB)

    def config_sections(self):
        return {**super().config_sections(), "data_name": self.data.name,
                "data_format": self.data.format}

    def start(self):
        self.batcher = BucketBatcher(self.train.lengths, self.config.batch_size, seed=self.train_config.seed)
        self.steps_per_epoch = len(self.batcher)
        self._it = iter(self.batcher)
        self.unk_probability = self.vocabs.unk_probability(self.config.word_dropout).to(self.device)
        ids = np.concatenate(self.train.words + self.train.tags)
        self._fingerprint = hashlib.sha256(ids.tobytes()).hexdigest()

    # -- the trainer's protocol -------------------------------------------------------------------
    def next_batch(self):
        try:
            idx = next(self._it)
        except StopIteration:        # a new epoch (the batcher draws its order)
            self._it = iter(self.batcher)
            idx = next(self._it)
        return make_batch(self.train, idx).to(self.device)

    def loss(self, batch):
        if self.model.training and self.config.word_dropout > 0:
            drop = torch.rand(batch.words.shape, device=self.device) < self.unk_probability[batch.words]
            batch.words = batch.words.masked_fill(drop, UNK)
        if self.model.training:
            return self.model.loss(batch, label_smoothing=self.config.label_smoothing,
                                   aux_weight=self.config.aux_weight)
        return self.model.loss(batch)

    def evaluate(self):
        from rnnkit.tasks.tag_api import score_split
        r = score_split(self.model, self.dev, self.data.dev, self.vocabs, device=self.device)
        keep = ("loss", "accuracy", "oov_accuracy", "f1", "precision", "recall")
        return {k: r[k] for k in keep if k in r}

    def state_dict(self):
        return {"batcher": self.batcher.state_dict(), "train_fingerprint": self._fingerprint}

    def load_state_dict(self, d):
        if d["train_fingerprint"] != self._fingerprint:
            raise ValueError("the training data differs from the data the run was trained on (its "
                             "ids have another SHA-256); exact resumption needs the same data")
        self.batcher.load_state_dict(d["batcher"])
        self._it = iter(self.batcher)

    def summary(self, best):
        f1 = f", span F1 {best['f1']:.4f}" if "f1" in best else ""
        return f"best validation: accuracy {best['accuracy']:.4f}{f1} at step {best['step']}"

    # -- after training: rnnkit evaluate / predict -----------------------------------------------
    @classmethod
    def evaluate_run(cls, run, data=None, **options):
        from rnnkit.tasks.tag_api import evaluate
        return evaluate(run, data, **options)

    @classmethod
    def format_evaluation(cls, result):
        from rnnkit.tasks.tag_api import format_evaluation
        return format_evaluation(result)

    @classmethod
    def predict(cls, run, inputs, *, device="cpu", **options):
        """For each text (words split at spaces, punctuation split off), its ``(word, tag)`` pairs."""
        from rnnkit.tasks.tag_api import predict_texts
        return predict_texts(run, inputs, device=device)

    @classmethod
    def format_prediction(cls, inputs, predictions):
        return "".join(" ".join(f"{w}/{t}" for w, t in pairs) + "\n" for pairs in predictions)

    @classmethod
    def predict_file(cls, run, input_path, output_path=None, *, device="cpu"):
        """Tag a CoNLL-U or column file; write it (to ``output_path``, else standard output) with the
        tag column filled in. Returns the predicted tags per sentence."""
        from rnnkit.tasks.tag_api import predict_file
        return predict_file(run, input_path, output_path, device=device)

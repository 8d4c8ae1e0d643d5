"""`ClassifyConfig`: the data, model and batching options of a text-classification run (N→1); its
training options are `rnnkit.train.TrainConfig`. The defaults are the ones measured in
``benchmarks/bench_classify.py`` (10-fold cross-validation on the UCI sentiment sentences)."""
from __future__ import annotations

from dataclasses import dataclass

from rnnkit.cells import CELLS
from rnnkit.train.config import check_fields, option

LEVELS = ("word", "char")
POOLINGS = ("last", "max", "mean", "attention")
DELIMITERS = ("tab", "comma")


@dataclass
class ClassifyConfig:
    """What a text classifier is trained on and what it is."""

    # data
    data: str | None = option(None, "labelled texts: a TSV/CSV file (text<TAB>label, or named columns "
                                    "with --text-col/--label-col and a header), or a folder with "
                                    "train/dev/test files, or of labelled files to split")
    text_col: str | None = option(None, "the text column: a header name (or a 0-based number for a "
                                        "file without header); none: all but the last column")
    label_col: str | None = option(None, "the label column: a header name (or a 0-based number); "
                                         "none: the last column")
    delimiter: str | None = option(None, "column separator (none: comma for .csv files, else tab)",
                                   choices=DELIMITERS)
    level: str = option("word", "tokens: words or characters", choices=LEVELS)
    lower: bool = option(True, "lower-case the text")
    min_freq: int = option(1, "words: rarer words of the training texts become <unk>")
    max_vocab: int | None = option(None, "words: the most frequent this many (specials included)")
    max_len: int | None = option(400, "tokens kept per text; longer texts are cut (with a warning "
                                      "counting them)")
    val_fraction: float = option(0.1, "share of the training examples held out for validation (early "
                                      "stopping, best weights) when there is no dev file")
    test_fraction: float = option(0.1, "share held out for the final test when there is no test file "
                                       "(0: none); ignored with --folds")
    folds: int | None = option(None, "cross-validation: split the examples into this many folds ...")
    fold: int | None = option(None, "... and hold out this one (0-based) as the test set")
    split_seed: int = option(0, "seed of the shuffle that splits the examples (the same seed gives the "
                                "same split, whatever --seed)")
    encoding: str = option("utf-8", "text encoding of the data files")
    errors: str = option("strict", "undecodable bytes: strict (an error naming the offset), "
                                   "replace or ignore")
    # model
    cell: str = option("gru", "recurrent cell", choices=lambda: tuple(sorted(CELLS)))
    bidirectional: bool = option(True, "read each text in both directions")
    pooling: str = option("max", "how the states over time become one vector: the last state (each "
                                 "direction's), the maximum or mean over time, or attention",
                          choices=POOLINGS)
    hidden: int = option(128, "hidden units per layer and direction")
    layers: int = option(1, "stacked recurrent layers")
    embedding: int = option(128, "embedding width")
    dropout: float = option(0.5, "dropout on the embeddings, between layers and before the output")
    subwords: int = option(20000, "words: add to each word's vector the mean vector of its character 3- to "
                                 "5-grams, hashed into this many buckets (fastText-style: rare, misspelt "
                                 "and unseen words get a vector from their spelling); 0: none. Ignored "
                                 "at the char level")
    ngrams: int = option(262144, "words: beside the recurrent model, a logistic regression on "
                                 "NB-weighted word 1- and 2-grams (NBSVM) hashed into this many buckets, "
                                 "fitted on the training part before training (L2 strength chosen on the "
                                 "validation part); validation selects the recurrent model by its own "
                                 "accuracy, and predictions average the two models' probabilities. "
                                 "0: none. Ignored at the char level")
    word_dropout: float = option(0.3, "training: the share of tokens replaced by <unk> (teaches the "
                                      "model texts with words it has not seen)")
    ensemble: int = option(1, "train this many models side by side (different random initial weights "
                              "and dropout) and average their probabilities (costs that many times the "
                              "time); 1: one model")
    # batches
    batch_size: int = option(32, "texts per batch (of similar lengths: bucketed)")

    def __post_init__(self):
        check_fields(self)
        owner = "ClassifyConfig"
        for name in ("hidden", "layers", "embedding", "batch_size", "min_freq", "max_len", "folds",
                     "ensemble"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{owner}: {name} must be >= 1, got {v}")
        for name in ("subwords", "ngrams"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{owner}: {name} must be an int >= 0 (0: none), got {v!r}")
        if self.max_vocab is not None and self.max_vocab < 5:
            raise ValueError(f"{owner}: max_vocab must be >= 5 (4 specials and a word), got {self.max_vocab}")
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{owner}: {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"{owner}: val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 <= self.test_fraction < 1 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"{owner}: test_fraction must be in [0, 1) and leave training examples "
                             f"beside val_fraction={self.val_fraction}, got {self.test_fraction}")
        if not 0 <= self.split_seed < 2 ** 63:   # what NumPy's generator takes
            raise ValueError(f"{owner}: split_seed must be an int in [0, 2**63), got {self.split_seed}")
        if (self.folds is None) != (self.fold is None):
            raise ValueError(f"{owner}: give --folds K and --fold i together (got folds={self.folds}, "
                             f"fold={self.fold})")
        if self.folds is not None:
            if self.folds < 2:
                raise ValueError(f"{owner}: folds must be >= 2, got {self.folds}")
            if not 0 <= self.fold < self.folds:
                raise ValueError(f"{owner}: fold must be in 0..{self.folds - 1} (0-based), got {self.fold}")

    def model_kwargs(self) -> dict:
        return {"cell": self.cell, "bidirectional": self.bidirectional, "pooling": self.pooling,
                "hidden": self.hidden, "layers": self.layers, "embedding": self.embedding,
                "dropout": self.dropout, "subwords": self.subwords if self.level == "word" else 0,
                "ngrams": self.ngrams if self.level == "word" else 0,
                "ensemble": self.ensemble}

"""`LMConfig`: the data, model and batching options of a language-model run (its training options
are `rnnkit.train.TrainConfig`). Options left at ``None`` are chosen by the recipe
(`rnnkit.tasks.lm.recipe`) from the text's size and the budget."""
from __future__ import annotations

from dataclasses import dataclass

from rnnkit.cells import CELLS
from rnnkit.train.config import check_fields, option

LEVELS = ("char", "word")
BATCHINGS = ("sequential", "random")
SPLITS = ("spread", "tail", "file")


#: the width of a model whose budget is in steps or epochs (minutes: the recipe sizes it)
DEFAULT_HIDDEN = 256

@dataclass
class LMConfig:
    """What a language model is trained on and what it is."""

    # data
    data: str = option("stdlib", "corpus: a name (stdlib, timemachine, shakespeare), a text file, a "
                                 "folder of .txt files, or - for standard input")
    level: str = option("char", "tokens: characters or words", choices=LEVELS)
    lower: bool = option(False, "lower-case the text")
    letters_only: bool = option(False, "the textbook normalisation: lower-case, every run of "
                                       "non-letters becomes one space (28 tokens)")
    min_freq: int = option(2, "words: rarer words become <unk>")
    max_vocab: int | None = option(None, "words: the most frequent this many (specials included)")
    val_fraction: float = option(0.1, "fraction of the text held out for validation (unused with "
                                      "--val-data)")
    val_data: str | None = option(None, "a separate validation text (a file, a folder of .txt files or "
                                        "a corpus name): then all of --data is training text")
    split: str | None = option(None, "how validation is held out: blocks spread over the text, the "
                                     "tail of the text, or whole files (none: files for a folder and "
                                     "stdlib, else spread)", choices=SPLITS)
    condition_col: str | None = option(None, "a conditional model (1→N): --data is labelled (text<TAB>label "
                                             "lines, or a header), each text is generated from its "
                                             "label in this column ('label': the last column)")
    encoding: str = option("utf-8", "text encoding of the data files")
    errors: str = option("strict", "undecodable bytes: strict (an error naming the offset), "
                                   "replace or ignore")
    # model
    cell: str = option("lstm", "recurrent cell", choices=lambda: tuple(sorted(CELLS)))
    hidden: int | None = option(None, "hidden units per layer (none: the recipe's choice: 256 for a "
                                      "budget in steps or epochs, sized by the measured speed for "
                                      "minutes)")
    layers: int | None = option(None, "stacked recurrent layers (none: the recipe's choice, 1 or 2)")
    dropout: float | None = option(None, "dropout on the embedding, between layers and before the "
                                         "output (none: the recipe's choice, 0 to 0.3)")
    weight_drop: float | None = option(None, "DropConnect on the recurrent weights (AWD-LSTM's "
                                             "regulariser; none: the recipe's choice, 0 for a text read "
                                             "at most 20 times, rising with the passes to 0.3)")
    recurrent_max_abs: float | None = option(
        None, "indrnn only: bound on |u|, the recurrent weights (none: 2^(1/seq_len): the bound Li et al. "
              "2018 set, 2^(1/T), with T the BPTT window)")
    embedding: int = option(64, "embedding width (0: one-hot input, the textbook's)")
    tie_weights: bool = option(False, "share the embedding with the output layer "
                                      "(needs --embedding equal to --hidden)")
    bidirectional: bool = option(False, "refused for language models (they must not read ahead)")
    # batches
    batch_size: int | None = option(None, "sequences per batch (none: the recipe's choice, 32 or 64)")
    seq_len: int = option(32, "time steps per batch (truncated backpropagation length)",
                          flag="--seq-len", aliases=("--num-steps",))
    batching: str = option("sequential", "sequential: contiguous streams, state carried across "
                                         "batches; random: random pieces, state reset per batch",
                           choices=BATCHINGS)
    # samples printed at each validation
    sample_length: int = option(200, "tokens of the sample printed at each validation (0: none)")
    sample_prompt: str | None = option(None, "prompt of those samples (none: the start of the "
                                             "validation text)")
    sample_temperature: float = option(0.8, "temperature of those samples")

    def __post_init__(self):
        check_fields(self)
        owner = "LMConfig"
        for name in ("hidden", "layers", "batch_size", "seq_len", "min_freq"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{owner}: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("embedding", "sample_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"{owner}: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("dropout", "weight_drop"):
            if getattr(self, name) is not None and not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{owner}: {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"{owner}: val_fraction must be in (0, 1): a language model is "
                             f"validated on held-out text, got {self.val_fraction}")
        if self.max_vocab is not None and self.max_vocab < 5:
            raise ValueError(f"{owner}: max_vocab must be >= 5 (4 specials and a word), got {self.max_vocab}")
        if self.recurrent_max_abs is not None and not self.recurrent_max_abs > 0:
            raise ValueError(f"{owner}: recurrent_max_abs must be > 0 (a bound on |u|), got "
                             f"{self.recurrent_max_abs}")
        if self.val_data is not None and self.condition_col is not None:
            raise ValueError(f"{owner}: val_data is for plain text; a conditional model (condition_col="
                             f"{self.condition_col!r}) holds out labelled lines of --data itself")
        if self.sample_temperature < 0:
            raise ValueError(f"{owner}: sample_temperature must be >= 0, got {self.sample_temperature}")
        if self.bidirectional:
            from rnnkit.tasks.lm.model import BIDIRECTIONAL_REFUSED
            raise ValueError(f"{owner}: {BIDIRECTIONAL_REFUSED}")

    def model_kwargs(self) -> dict:
        kw = {"cell": self.cell, "hidden": self.hidden or DEFAULT_HIDDEN, "layers": self.layers,
              "dropout": self.dropout, "embedding": self.embedding, "tie_weights": self.tie_weights,
              "weight_drop": self.weight_drop or 0.0}
        if self.cell == "indrnn":  # unbounded, a relu IndRNN diverged with the default recipe
            kw["recurrent_max_abs"] = self.recurrent_max_abs or 2.0 ** (1.0 / self.seq_len)
        return kw

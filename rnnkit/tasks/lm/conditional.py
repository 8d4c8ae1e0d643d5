"""1→N: a language model whose initial state comes from a vector -- a class label (``rnnkit train
--task lm --condition-col label`` on a labelled file; ``rnnkit generate RUN --condition positive``)
or any feature vector a user passes from Python.

The model is the language model (`rnnkit.tasks.lm.model.LanguageModel`) with one more layer: a
condition vector ``c`` ``(B, K)`` sets the initial state of every layer, ``state_0 = tanh(c W + b)``
cut into the stack's state tensors (``h``, and ``c`` for an LSTM). A class label is its one-hot
vector (so ``W``'s rows are learned per-class states). Each text is one sequence, read and written
character by character between two newlines (``"\\n" + text + "\\n"``: the newline starts a text and
ends it), so generation stops when the model writes a newline. Shapes: B batch, T time, K condition
size, V vocabulary, L layers, H hidden.
"""
from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data import CharVocab, load_vocab
from rnnkit.data.padded import pad_batch
from rnnkit.decode import sample_tokens
from rnnkit.tasks.bucketed import BucketedBatches
from rnnkit.tasks.lm.model import LanguageModel
from rnnkit.tasks.lm.task import LanguageModelTask
from rnnkit.train import RunFolder, RunFolderError
from rnnkit.train.checkpoint import VOCAB

#: texts longer than this many characters are cut (with a counted warning)
MAX_CHARS = 400
IGNORE = -100


class ConditionalLanguageModel(LanguageModel):
    """`LanguageModel` whose initial state is ``tanh(condition W + b)`` (module docstring)."""

    def __init__(self, vocab_size: int, condition_size: int, **kwargs):
        super().__init__(vocab_size, **kwargs)
        if isinstance(condition_size, bool) or not isinstance(condition_size, int) or condition_size < 1:
            raise ValueError(f"ConditionalLanguageModel: condition_size must be an int >= 1, "
                             f"got {condition_size!r}")
        self.condition_size = condition_size
        with torch.no_grad():  # the stack's state layout: a tuple of (L*D, B, H_s) tensors
            _, probe = self.rnn(torch.zeros(1, 1, self.embedding_size or vocab_size))
        self.state_shapes = [(s.shape[0], s.shape[2]) for s in probe]
        self.condition = nn.Linear(condition_size, sum(n * h for n, h in self.state_shapes))

    def initial_state(self, condition: Tensor) -> tuple[Tensor, ...]:
        """``condition`` ``(B, K)`` -> the stack's initial state (each ``(L, B, H)``)."""
        if condition.dim() != 2 or condition.shape[1] != self.condition_size:
            raise ValueError(f"ConditionalLanguageModel: expected a condition of shape (B, K="
                             f"{self.condition_size}), got {tuple(condition.shape)}")
        z = torch.tanh(self.condition(condition.to(self.condition.weight.dtype)))   # (B, sum L*H)
        out, at = [], 0
        for n, h in self.state_shapes:
            part = z[:, at:at + n * h].view(-1, n, h)                              # (B, L, H)
            out.append(part.transpose(0, 1).contiguous())                          # (L, B, H)
            at += n * h
        return tuple(out)

    def config(self) -> dict:
        return {**super().config(), "condition_size": self.condition_size}


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[str]


def read_labelled_texts(path: str, column: str, encoding: str, errors: str) -> LabelledTexts:
    """The texts and labels of a labelled file (``text<TAB>label`` lines; or a header naming
    ``column``) or of every labelled file of a folder. ``column`` names the label column: a header's
    name, or ``label`` for the last column of files without a header."""
    from rnnkit.data import read_text
    from rnnkit.tasks.classify.data import find_files, read_labelled
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data: {path!r} does not exist; expected a labelled file "
                                f"(text<TAB>label lines) or a folder of them")
    files = [f for paths in find_files(p).values() for f in paths] if p.is_dir() else [p]
    out = LabelledTexts([], [])
    for f in files:
        first = read_text(f, encoding, errors, allow_empty=True).split("\n", 1)[0]
        sep = "," if f.suffix == ".csv" else "\t"
        header = [c.strip() for c in first.split(sep)]
        if column in header:
            ex = read_labelled(f, label_col=column, encoding=encoding, errors=errors)
        elif column == "label":
            ex = read_labelled(f, encoding=encoding, errors=errors)      # the last column
        else:
            raise ValueError(f"{f}: --condition-col {column!r} is not a column of its header "
                             f"{header}; name a header column, or 'label' for the last column of "
                             f"files without a header")
        out.texts += ex.texts
        out.labels += ex.labels
    if len(set(out.labels)) < 2:
        raise ValueError(f"data {path!r}: every text has the label {out.labels[0]!r}; a conditional "
                         f"language model needs at least two classes in --condition-col {column!r}")
    return out


class ConditionalLMTask(BucketedBatches, LanguageModelTask):
    """The language model task with ``condition_col``: one text per sequence, conditioned on its
    label (what `LanguageModelTask.variant` picks)."""

    count_unit = "tokens"

    def load_data(self, run, progress):
        cfg = self.config
        if cfg.level != "char":
            raise ValueError("--condition-col: conditional language models are character-level; "
                             "drop --level word")
        data = read_labelled_texts(cfg.data, cfg.condition_col, cfg.encoding, cfg.errors)
        texts = [t.replace("\n", " ") for t in data.texts]
        cut = sum(len(t) > MAX_CHARS for t in texts)
        if cut:
            warnings.warn(f"{cut} of {len(texts)} texts are longer than {MAX_CHARS} characters and "
                          f"were cut to that length", stacklevel=2)
            texts = [t[:MAX_CHARS] for t in texts]
        if run is not None:
            self.vocab = load_vocab(run.require(VOCAB))
            self.classes = run.read_config(self.name)["classes"]
        else:
            self.vocab = CharVocab.from_text("\n".join(texts) + "\n", lower=cfg.lower,
                                             letters_only=cfg.letters_only)
            self.classes = sorted(set(data.labels))
        if "\n" not in self.vocab.index:
            raise ValueError("--condition-col: the vocabulary has no newline, which starts and ends "
                             "every text; drop --letters-only")
        rng = np.random.default_rng(self.train_config.seed)
        order = rng.permutation(len(texts))
        n_val = max(1, int(round(cfg.val_fraction * len(texts))))
        self.val_idx, self.train_idx = order[:n_val], order[n_val:]
        self.seqs = [np.asarray(self.vocab.encode("\n" + t + "\n"), dtype=np.int64) for t in texts]
        self.label_ids = np.array([self.classes.index(lab) for lab in data.labels])
        self.train_chars = int(sum(len(self.seqs[i]) - 1 for i in self.train_idx))
        self.source = cfg.data

    def train_tokens(self) -> int:
        return self.train_chars

    def check(self):
        if len(self.train_idx) < self.config.batch_size:
            raise ValueError(f"data {self.source!r}: {len(self.train_idx)} training texts, fewer than "
                             f"one batch of --batch-size {self.config.batch_size}")

    def build_model(self):
        return ConditionalLanguageModel(len(self.vocab), len(self.classes),
                                        **self.config.model_kwargs())

    def describe_data(self):
        n = sum(p.numel() for p in self.model.parameters())
        return (f"data: {self.source}: {len(self.train_idx):,} training and {len(self.val_idx):,} "
                f"validation texts ({self.train_chars:,} training characters), classes "
                f"{self.classes}, vocabulary {len(self.vocab)}; model: {n:,} parameters on {self.device}")

    def config_sections(self):
        return {**super(LanguageModelTask, self).config_sections(), "data_name": self.source,
                "classes": self.classes}

    def start(self):
        lengths = [len(self.seqs[i]) - 1 for i in self.train_idx]
        self.start_batches(lengths, self.config.batch_size, self.train_config.seed)

    # -- the trainer's protocol -------------------------------------------------------------------
    def _batch(self, idx):
        seqs = [self.seqs[i] for i in idx]
        x, _ = pad_batch([s[:-1] for s in seqs], 0)                      # (B, T)
        y, _ = pad_batch([s[1:] for s in seqs], IGNORE)                  # (B, T)
        cond = F.one_hot(torch.as_tensor(self.label_ids[idx]), len(self.classes)).float()  # (B, K)
        return x.to(self.device), y.to(self.device), cond.to(self.device)

    def next_batch(self):
        return self._batch(self.train_idx[self.next_indices()])

    def _sum(self, batch):
        x, y, cond = batch
        logits, _ = self.model.forward_time_major(x.t(), self.model.initial_state(cond))  # (T, B, V)
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.t().reshape(-1),
                                ignore_index=IGNORE, reduction="sum")
        return total, (y != IGNORE).sum()

    def loss(self, batch):
        return self._sum(batch)

    def evaluate(self):
        total, count = 0.0, 0
        for start in range(0, len(self.val_idx), 64):
            s, n = self._sum(self._batch(self.val_idx[start:start + 64]))
            total, count = total + float(s), count + int(n)
        loss = total / count
        return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "bpc": loss / math.log(2)}

    def merge_shard_states(self, states):
        return states[0]

    def take_shard(self, rank, world):
        pass

    def callbacks(self):
        return []

    def summary(self, best):
        return f"best validation: ppl {best['ppl']:.4f}, bpc {best['bpc']:.4f} at step {best['step']}"


# -- after training ---------------------------------------------------------------------------------
def generate(run, condition, num_samples: int = 1, *, length: int = 300, temperature: float = 0.8,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             device: str = "cpu") -> list[str]:
    """``num_samples`` texts written from ``condition``: a class label of the run (a str), or a
    vector ``(K,)`` of the model's condition size (any features the model was trained on). Each text
    ends where the model writes a newline (or after ``length`` characters)."""
    from rnnkit.tasks.lm.api import LoadedLM, load
    loaded = run if isinstance(run, LoadedLM) else (load(run, device) if not isinstance(run, tuple)
                                                    else None)
    model, vocab = (loaded.model, loaded.vocab) if loaded is not None else run
    if not isinstance(model, ConditionalLanguageModel):
        raise ValueError(f"{run}: not a conditional language model (trained without --condition-col); "
                         f"use rnnkit generate without --condition")
    if isinstance(condition, str):
        classes = RunFolder(loaded.run).read_config("lm")["classes"] if loaded is not None else None
        if classes is None or condition not in classes:
            raise ValueError(f"condition {condition!r} is not a class of this run; its classes are "
                             f"{classes}")
        vector = F.one_hot(torch.tensor(classes.index(condition)), len(classes)).float()
    else:
        vector = torch.as_tensor(np.asarray(condition, dtype=np.float32))
    if vector.shape != (model.condition_size,):
        raise ValueError(f"condition: expected a vector of size {model.condition_size}, got shape "
                         f"{tuple(vector.shape)}")
    dev = next(model.parameters()).device
    newline = vocab.index["\n"]
    gen = torch.Generator(device=dev).manual_seed(
        seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
    with torch.no_grad():
        state = model.initial_state(vector.to(dev).expand(num_samples, -1))
        scores, state = model.step(torch.full((num_samples,), newline, device=dev), state)
        tokens = torch.stack(list(sample_tokens(model.step, scores, state, length,
                                                temperature=temperature, top_k=top_k, top_p=top_p,
                                                generator=gen, banned=(vocab.unk_id,), eos=newline)),
                             dim=1)                                                    # (B, n)
    out = []
    for row in tokens.tolist():
        text = "".join(vocab.tokens[i] for i in row)
        out.append(text.split("\n", 1)[0])
    return out


def evaluate(run, data: str | None = None, *, split: str | None = None, device: str = "cpu",
             encoding: str = "utf-8", errors: str = "strict") -> dict:
    """Loss, perplexity and bits per character of the run on labelled texts, each conditioned on its
    label: ``data`` (all of it), or the run's own validation texts. Labels the run never saw are an
    error naming them."""
    from rnnkit.tasks.lm.api import load, read_run_config
    loaded = load(run, device)
    folder = RunFolder(loaded.run)
    cfg, tr_cfg, _ = read_run_config(folder)
    classes = folder.read_config("lm")["classes"]
    task = ConditionalLMTask(cfg, tr_cfg, device)
    task.train_config = tr_cfg
    if data is not None:
        cfg = dataclasses.replace(cfg, data=data, encoding=encoding, errors=errors)
        task.config = cfg
    if cfg.condition_col is None:
        raise RunFolderError(f"{folder.path}: not a conditional language model (its config has no "
                             f"condition_col)")
    task.load_data(folder, False)
    unknown = sorted(set(read_labelled_texts(cfg.data, cfg.condition_col, cfg.encoding,
                                             cfg.errors).labels) - set(classes))
    if unknown:
        raise ValueError(f"data {cfg.data!r}: labels {unknown} are not classes of this run "
                         f"({classes})")
    if data is not None or split == "all":
        task.val_idx = np.arange(len(task.seqs))
    task.model = loaded.model
    with torch.no_grad():
        result = task.evaluate()
    n = int(sum(len(task.seqs[i]) - 1 for i in task.val_idx))
    return {**result, "tokens": n, "data": cfg.data, "split": "all" if data is not None else "val",
            "unknown": [], "unknown_tokens": 0}

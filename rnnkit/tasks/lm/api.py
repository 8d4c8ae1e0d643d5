"""Character- and word-level language models: ``train``, ``generate``, ``evaluate`` (what the CLI calls).

>>> from rnnkit.tasks import lm
>>> result = lm.train("timemachine", letters_only=True, minutes=2, out="runs/tm")
>>> lm.generate("runs/tm", "time traveller", length=100, temperature=0.8)
>>> lm.evaluate("runs/tm", "some_other_text.txt")          # {"loss", "ppl", "bpc", ...}
>>> lm.evaluate_ngram("timemachine", letters_only=True)    # the Kneser-Ney baseline, orders 3-7

A run folder (`rnnkit.train.checkpoint`) holds everything ``generate`` and ``evaluate`` need.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.data import Vocab, WordVocab, load_corpus, load_vocab
from rnnkit.data.corpora import default_split
from rnnkit.data.vocab import detokenize
from rnnkit.decode import Sampler, check_sampling, sample_tokens
from rnnkit.decode.sampler import PRECISIONS
from rnnkit.tasks import base
from rnnkit.tasks.base import RESUMABLE_OPTIONS
from rnnkit.tasks.lm.config import LMConfig
from rnnkit.tasks.lm.data import evaluate_ids
from rnnkit.tasks.lm.model import LanguageModel
from rnnkit.tasks.lm.task import LanguageModelTask, SampleCallback
from rnnkit.train import RunFolder, RunFolderError, TrainConfig
from rnnkit.train.checkpoint import BEST, CONFIG, VOCAB

__all__ = ["LMConfig", "LanguageModel", "LoadedLM", "train", "generate", "iter_generate", "evaluate",
           "evaluate_ngram", "load", "next_token_distribution", "RESUMABLE_OPTIONS", "SampleCallback"]


# -- training ------------------------------------------------------------------------------------
def read_run_config(run: RunFolder) -> tuple[LMConfig, TrainConfig, dict]:
    """The run's `LMConfig`, `TrainConfig` and model arguments from its ``config.json``."""
    return LanguageModelTask.read_configs(run)


def train(data: str | None = None, *, out=None, resume=None, progress: bool = True,
          callbacks=(), echo: Callable[[str], None] | None = print, **options):
    """Train a language model; returns the `rnnkit.train.FitResult` (``.run`` is the run folder).

    ``options`` are the fields of `LMConfig` and `rnnkit.train.TrainConfig` (``hidden=256``,
    ``minutes=2``, ...; unknown names are a ``TypeError``). ``resume=RUN`` continues that run exactly
    (only `RESUMABLE_OPTIONS` may be given, e.g. a larger budget). ``echo=None`` prints nothing.
    """
    if data is not None:
        options["data"] = data
    return base.train(LanguageModelTask, out=out, resume=resume, progress=progress,
                      callbacks=callbacks, echo=echo, **options)


# -- loading, generation, evaluation ---------------------------------------------------------------
@dataclass
class LoadedLM:
    model: LanguageModel
    vocab: Vocab
    config: LMConfig
    run: Path


def load(run, device: str | torch.device = "cpu", weights: str = BEST) -> LoadedLM:
    """The run's model (best-by-validation weights, on ``device``, in eval mode) and vocabulary."""
    if isinstance(run, LoadedLM):
        return run
    folder = RunFolder(run)
    lm_cfg, _, model_args = read_run_config(folder)
    vocab = load_vocab(folder.require(VOCAB))
    model_cls: type[LanguageModel] = LanguageModel
    if "condition_size" in model_args:   # a conditional model (--condition-col)
        from rnnkit.tasks.lm.conditional import ConditionalLanguageModel
        model_cls = ConditionalLanguageModel
    try:
        model = model_cls(**model_args)
    except (TypeError, ValueError) as exc:
        raise RunFolderError(f"{folder / CONFIG}: bad model arguments {model_args}: {exc}") from None
    if model.vocab_size != len(vocab):
        raise RunFolderError(f"{folder.path}: the model has {model.vocab_size} outputs but "
                             f"{VOCAB} holds {len(vocab)} tokens; the folder mixes two runs")
    folder.load_weights(weights, model)
    return LoadedLM(model.to(device).eval(), vocab, lm_cfg, folder.path)


def _encode_prompt(vocab: Vocab, prompt: str, unk: str) -> list[int]:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if unk not in ("error", "replace"):
        raise ValueError(f"unk must be 'error' or 'replace', got {unk!r}")
    missing = vocab.unknown(prompt)
    if missing and unk == "error":
        kind = "words" if isinstance(vocab, WordVocab) else "characters"
        raise ValueError(f"prompt: the {kind} {missing} are not in the run's vocabulary "
                         f"({len(vocab)} tokens); remove them, or pass --unk replace "
                         f"(unk='replace') to feed them as <unk>")
    ids = [int(i) for i in vocab.encode(prompt)]
    if not ids:  # an empty prompt: start where a line starts
        for start in ("\n", " "):
            if start in vocab.index:
                return [vocab.index[start]]
        return [len(vocab) - 1]
    return ids


def iter_generate(run, prompt: str = "", length: int = 200, *, temperature: float = 0.8,
                  top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                  unk: str = "error", device: str = "cpu", precision: str = "fp32") -> Iterator[str]:
    """An iterator over the continuation of ``prompt``, piece by piece (a character, or a word with
    its spacing) as it is sampled. ``run``: a run folder, a `LoadedLM`, or ``(model, vocab)``.
    ``precision="bf16"``: the sampler's step reads its weights in bf16 (half the bytes; fp32 keeps
    the guarantee that a seed draws the tokens of any other fp32 step loop).
    Arguments are checked (and the prompt encoded) before it is returned."""
    check_sampling(temperature, top_k, top_p)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be an int >= 1 (tokens to generate), got {length!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    if seed is not None and not 0 <= seed < 2 ** 63:   # what torch's generators take
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    if isinstance(run, tuple):
        model, vocab = run
    else:
        loaded = load(run, device)
        model, vocab = loaded.model, loaded.vocab
    ids = _encode_prompt(vocab, prompt, unk)
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(
        seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
    banned = (1, 2, 3) if isinstance(vocab, WordVocab) else (vocab.unk_id,)
    prev = vocab.tokens[ids[-1]] if prompt else None

    def pieces() -> Iterator[str]:
        nonlocal prev
        with torch.no_grad():
            logits, state = model.forward_time_major(torch.tensor(ids, device=dev).view(-1, 1))
            # the prompt through the stack's fused kernel, then the sampler's fast steps (stock
            # cells; others step through the stack's forward, as model.step does)
            sampler = Sampler(model.rnn, model.embed, model.head, precision=precision)
            for tok in sample_tokens(sampler.step, logits[-1], state, length,
                                     temperature=temperature, top_k=top_k, top_p=top_p,
                                     generator=gen, banned=banned):
                text = vocab.tokens[int(tok)]
                if isinstance(vocab, WordVocab):
                    piece = detokenize([prev, text])[len(prev):] if prev is not None else text
                    prev = text
                    yield piece
                else:
                    yield text
    return pieces()


def next_token_distribution(run, text: str, *, top: int = 5, unk: str = "replace",
                            device: str = "cpu") -> list[tuple[str, float]]:
    """The ``top`` most likely next tokens after ``text`` with their probabilities, most likely
    first. ``run``: a run folder, a `LoadedLM`, or ``(model, vocab)``."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be an int >= 1, got {top!r}")
    loaded = run if isinstance(run, tuple) else load(run, device)
    model, vocab = loaded if isinstance(loaded, tuple) else (loaded.model, loaded.vocab)
    ids = _encode_prompt(vocab, text, unk)
    dev = next(model.parameters()).device
    with torch.no_grad():
        logits, _ = model.forward_time_major(torch.tensor(ids, device=dev).view(-1, 1))  # (T, 1, V)
        probs = torch.softmax(logits[-1, 0].float(), dim=-1)
    p, idx = probs.topk(min(top, len(vocab)))
    return [(vocab.tokens[int(i)], float(q)) for q, i in zip(p, idx)]


def generate(run, prompt: str = "", length: int = 200, *, temperature: float = 0.8,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             num_samples: int = 1, unk: str = "error", device: str = "cpu",
             precision: str = "fp32") -> list[str]:
    """``num_samples`` texts, each ``prompt`` followed by ``length`` sampled tokens.

    ``temperature=0`` is greedy. Sample ``i`` uses seed ``seed + i``, so it does not depend on
    ``num_samples``. A prompt with tokens the vocabulary lacks is a ``ValueError`` naming them,
    unless ``unk="replace"``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    loaded = load(run, device) if not isinstance(run, tuple) else run
    base = seed if seed is not None else int.from_bytes(os.urandom(4), "little")
    return [prompt + "".join(iter_generate(loaded, prompt, length, temperature=temperature,
                                           top_k=top_k, top_p=top_p, seed=base + i, unk=unk,
                                           precision=precision))
            for i in range(num_samples)]


def evaluate(run, data: str | None = None, *, split: str | None = None, encoding: str = "utf-8",
             errors: str = "strict", device: str = "cpu") -> dict:
    """Perplexity and bits per character (``bpc``; ``bpw`` for words) of the run on a text.

    ``data``: a file, folder or corpus name; by default the run's own data. ``split``: ``"all"``
    (the whole text; the default for a given ``data``), ``"val"`` (the run's validation part, the
    default without ``data``) or ``"train"``. The result also counts tokens the vocabulary lacks
    (``unknown``: they are scored as ``<unk>``).
    """
    loaded = load(run, device)
    cfg = loaded.config
    split = split or ("val" if data is None else "all")
    if split not in ("all", "val", "train"):
        raise ValueError(f"split must be 'all', 'val' or 'train', got {split!r}")
    spec = cfg.data if data is None else data
    held_out = getattr(cfg, "val_data", None) if data is None else None
    if held_out is not None and split != "all":   # trained with --val-data: each split is a whole text
        spec = held_out if split == "val" else cfg.data
        corpus = load_corpus(spec, val_fraction=0.0, split=None if split == "val" else cfg.split,
                             encoding=encoding, errors=errors)
        text = corpus.train_text
    elif split == "all":
        corpus = load_corpus(spec, val_fraction=0.0, encoding=encoding, errors=errors)
        text = corpus.train_text
    else:
        corpus = load_corpus(spec, val_fraction=cfg.val_fraction, split=cfg.split,
                             encoding=encoding, errors=errors)
        text = corpus.val_text if split == "val" else corpus.train_text
    vocab = loaded.vocab
    ids = vocab.encode(text)
    if len(ids) < 2:
        raise ValueError(f"data {spec!r}: the text has {len(ids)} {cfg.level} tokens; evaluation "
                         f"needs at least 2")
    unit = "word" if isinstance(vocab, WordVocab) else "character"
    result = evaluate_ids(loaded.model, ids, unit)
    result.update(data=corpus.name, split=split, unknown=vocab.unknown(text),
                  unknown_tokens=int((ids == vocab.unk_id).sum()))
    return result


def evaluate_ngram(data: str = "stdlib", orders=(3, 4, 5, 6, 7), *, val_fraction: float = 0.1,
                   split: str | None = None, lower: bool = False, letters_only: bool = False,
                   encoding: str = "utf-8", errors: str = "strict", discount=0.75) -> list[dict]:
    """The Kneser-Ney character n-gram baseline (`rnnkit.baselines.KneserNeyLM`): fitted on the
    training part of ``data``, scored on its validation part, exactly the split and normalisation a
    language-model run with the same options uses. One ``{"order", "bpc", "ppl", "seconds"}`` per order."""
    from rnnkit.baselines import KneserNeyLM
    from rnnkit.data import normalize

    corpus = load_corpus(data, val_fraction=val_fraction, split=split or default_split(data),
                         encoding=encoding, errors=errors)
    train_text = normalize(corpus.train_text, lower, letters_only)
    val_text = normalize(corpus.val_text, lower, letters_only)
    out = []
    for n in orders:
        t = time.perf_counter()
        bpc = KneserNeyLM(n, discount).fit(train_text).bits_per_char(val_text)
        out.append({"order": n, "bpc": bpc, "ppl": 2.0 ** bpc, "data": corpus.name,
                    "seconds": time.perf_counter() - t})
    return out


def best_ngram(results: list[dict]) -> dict:
    return min(results, key=lambda r: r["bpc"] if math.isfinite(r["bpc"]) else math.inf)

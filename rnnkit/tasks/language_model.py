"""Character- and word-level language models: ``train``, ``generate``, ``evaluate`` (what the CLI calls).

>>> from rnnkit.tasks import language_model as lm
>>> result = lm.train("timemachine", letters_only=True, minutes=2, out="runs/tm")
>>> lm.generate("runs/tm", "time traveller", length=100, temperature=0.8)
>>> lm.evaluate("runs/tm", "some_other_text.txt")          # {"loss", "ppl", "bpc", ...}
>>> lm.evaluate_ngram("timemachine", letters_only=True)    # the Kneser-Ney baseline, orders 3-7

A run folder (`rnnkit.train.checkpoint`) holds everything ``generate`` and ``evaluate`` need.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.data import Vocab, WordVocab, load_corpus, load_vocab
from rnnkit.data.vocab import detokenize
from rnnkit.generate import check_sampling, sample_tokens
from rnnkit.sampler import Sampler
from rnnkit.tasks.lm_config import LMConfig
from rnnkit.tasks import lm_recipe as recipe
from rnnkit.tasks.lm_data import LMTask, check_batch_fits, evaluate_ids, load_lm_data
from rnnkit.tasks.lm_model import LanguageModel
from rnnkit.train import Callback, ProgressBar, RunFolder, RunFolderError, TrainConfig, Trainer, \
    resolve_device
from rnnkit.train.checkpoint import BEST, CONFIG, VOCAB
from rnnkit.train.config import describe, from_dict, to_dict

__all__ = ["LMConfig", "LanguageModel", "LoadedLM", "train", "generate", "iter_generate", "evaluate",
           "evaluate_ngram", "load", "RESUMABLE_OPTIONS"]

FORMAT, VERSION, TASK = "rnnkit.run", 1, "lm"
#: options a resumed run may change; the others would make it a different run
RESUMABLE_OPTIONS = ("epochs", "steps", "minutes", "threads", "device", "log_every")


# -- training ------------------------------------------------------------------------------------
def _split_options(options: dict) -> tuple[dict, dict]:
    lm_keys, tr_keys = set(LMConfig.__dataclass_fields__), set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(options) - lm_keys - tr_keys)
    if unknown:
        raise TypeError(f"train: unknown option(s) {unknown}; known options: "
                        f"{sorted(lm_keys | tr_keys)}")
    return ({k: v for k, v in options.items() if k in lm_keys},
            {k: v for k, v in options.items() if k in tr_keys})


def default_run_name(cfg: LMConfig) -> Path:
    """``runs/<data>-<cell>-<date-time>`` (a suffix when that folder exists already)."""
    data = "stdin" if cfg.data == "-" else Path(cfg.data).stem or "data"
    data = re.sub(r"[^A-Za-z0-9_.-]+", "_", data)
    base = Path("runs") / f"{data}-{cfg.cell}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def read_run_config(run: RunFolder) -> tuple[LMConfig, TrainConfig, dict]:
    """The run's `LMConfig`, `TrainConfig` and model arguments from its ``config.json``."""
    d = run.read_json(CONFIG)
    if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("task") != TASK:
        raise RunFolderError(f"{run / CONFIG} is not the configuration of an rnnkit language-model "
                             f"run (expected \"format\": {FORMAT!r}, \"task\": {TASK!r})")
    try:
        return (from_dict(LMConfig, d["lm"], where=f"{run / CONFIG} [lm]"),
                from_dict(TrainConfig, d["train"], where=f"{run / CONFIG} [train]"), dict(d["model"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(f"{run / CONFIG} is corrupt: {exc}") from None


def _resume_configs(run: RunFolder, data, options: dict) -> tuple[LMConfig, TrainConfig]:
    lm_cfg, tr_cfg, _ = read_run_config(run)
    if data is not None:
        options = {**options, "data": data}
    changed = {k: v for k, v in options.items()
               if getattr(lm_cfg if k in LMConfig.__dataclass_fields__ else tr_cfg, k, v) != v}
    refused = sorted(set(changed) - set(RESUMABLE_OPTIONS))
    _split_options(options)  # unknown names are refused first
    if refused:
        raise ValueError(f"resume: {refused} cannot change when resuming {run.path} (it would be "
                         f"another run); only {list(RESUMABLE_OPTIONS)} can")
    tr = to_dict(tr_cfg)
    if any(k in options for k in ("epochs", "steps", "minutes")):
        tr.update(epochs=None, steps=None, minutes=None)
    tr.update({k: v for k, v in options.items() if k in tr})
    return lm_cfg, TrainConfig(**tr)


class SampleCallback(Callback):
    """At each validation, sample ``length`` tokens and put them in the record (printed and saved to
    samples.txt). Its own generator, seeded by the step, leaves the training RNG alone."""

    def __init__(self, vocab: Vocab, prompt: str, length: int, temperature: float, seed: int):
        self.vocab, self.prompt, self.length = vocab, prompt, length
        self.temperature, self.seed = temperature, seed

    def on_validation(self, trainer, record: dict) -> None:
        model = trainer.model
        model.eval()
        try:
            text = "".join(iter_generate((model, self.vocab), self.prompt, self.length,
                                         temperature=self.temperature,
                                         seed=self.seed * 1_000_003 + trainer.step, unk="replace"))
        finally:
            model.train()
        record["sample"] = self.prompt + text


def _default_prompt(vocab: Vocab, val_text: str) -> str:
    """A few words from the start of the validation text (from its second line when the first is
    short), cut at a space: a prompt from the data's own world."""
    text = vocab.normalize(val_text[:400])
    nl = text.find("\n")
    if 0 <= nl < 100 and text[nl + 1:].strip():
        text = text[nl + 1:]
    head = text.lstrip()[:24]
    cut = head.rfind(" ")
    return head[:cut + 1] if cut > 0 else head


def train(data: str | None = None, *, out=None, resume=None, progress: bool = True,
          callbacks=(), echo: Callable[[str], None] | None = print, **options):
    """Train a language model; returns the `rnnkit.train.FitResult` (``.run`` is the run folder).

    ``options`` are the fields of `LMConfig` and `rnnkit.train.TrainConfig` (``hidden=256``,
    ``minutes=2``, ...; unknown names are a ``TypeError``). ``resume=RUN`` continues that run exactly
    (only `RESUMABLE_OPTIONS` may be given, e.g. a larger budget). ``echo=None`` prints nothing.
    """
    echo = echo or (lambda text: None)
    if resume is not None:
        run = RunFolder(resume)
        lm_cfg, tr_cfg = _resume_configs(run, data, options)
    else:
        lm_opts, tr_opts = _split_options(options)
        if data is not None:
            lm_opts["data"] = data
        lm_cfg, tr_cfg = LMConfig(**lm_opts), TrainConfig(**tr_opts)
        run = RunFolder(out if out is not None else default_run_name(lm_cfg))
        if run.exists():
            raise ValueError(f"out: {str(run.path)!r} already holds a run; continue it with "
                             f"--resume {run.path} (resume=...) or choose another --out")
    echo(f"run folder: {run.path}" + (" (resuming)" if resume is not None else ""))
    if tr_cfg.threads:
        torch.set_num_threads(tr_cfg.threads)
    device = resolve_device(tr_cfg.device)
    vocab = load_vocab(run.require(VOCAB)) if resume is not None else None
    lm_data = load_lm_data(lm_cfg, vocab, progress=None if progress else False)
    vocab = lm_data.vocab
    if resume is None:
        lm_cfg, tr_cfg, why = recipe.choose(
            lm_cfg, tr_cfg, len(lm_data.train_ids),
            lambda: recipe.probe_tokens_per_second(len(vocab), lm_cfg, device))
        tr_cfg = dataclasses.replace(tr_cfg, lr=tr_cfg.learning_rate)
        if why:
            echo(why)
    check_batch_fits(lm_cfg, lm_data)
    echo("configuration:\n" + describe(lm_cfg) + "\n" + describe(tr_cfg))
    torch.manual_seed(tr_cfg.seed)
    model = LanguageModel(len(vocab), **lm_cfg.model_kwargs()).to(device)
    echo(f"data: {lm_data.corpus.name}: {len(lm_data.train_ids):,} training and "
         f"{len(lm_data.val_ids):,} validation {lm_cfg.level} tokens, vocabulary {len(vocab):,}; "
         f"model: {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    if resume is None:
        run.path.mkdir(parents=True, exist_ok=True)
        vocab.to_json(run / VOCAB)
        run.write_json(CONFIG, {"format": FORMAT, "version": VERSION, "task": TASK,
                                "lm": to_dict(lm_cfg), "train": to_dict(tr_cfg),
                                "model": model.config(), "data_name": lm_data.corpus.name})
    task = LMTask(model, lm_data, lm_cfg, seed=tr_cfg.seed)
    cbs = []
    if lm_cfg.sample_length:
        prompt = lm_cfg.sample_prompt or _default_prompt(vocab, lm_data.corpus.val_text)
        cbs.append(SampleCallback(vocab, prompt, lm_cfg.sample_length, lm_cfg.sample_temperature,
                                  tr_cfg.seed))
    if progress:
        cbs.append(ProgressBar())
    trainer = Trainer(task, tr_cfg, run, callbacks=[*cbs, *callbacks], resume=resume is not None,
                      echo=echo)
    result = trainer.fit()
    result.run = run.path
    if result.status in ("interrupted", "stopped"):
        result.message += f"; resume with: rnnkit train --resume {run.path}"
    if result.best is not None:
        unit = "bpw" if lm_cfg.level == "word" else "bpc"
        result.message += (f"; best validation: ppl {result.best['ppl']:.4f}, {unit} "
                           f"{result.best[unit]:.4f} at step {result.best['step']}")
    echo(result.message)
    return result


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
    try:
        model = LanguageModel(**model_args)
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
                  unk: str = "error", device: str = "cpu") -> Iterator[str]:
    """An iterator over the continuation of ``prompt``, piece by piece (a character, or a word with
    its spacing) as it is sampled. ``run``: a run folder, a `LoadedLM`, or ``(model, vocab)``.
    Arguments are checked (and the prompt encoded) before it is returned."""
    check_sampling(temperature, top_k, top_p)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be an int >= 1 (tokens to generate), got {length!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
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
            sampler = Sampler(model.rnn, model.embed, model.head)
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


def generate(run, prompt: str = "", length: int = 200, *, temperature: float = 0.8,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             num_samples: int = 1, unk: str = "error", device: str = "cpu") -> list[str]:
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
                                           top_k=top_k, top_p=top_p, seed=base + i, unk=unk))
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
    if split == "all":
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

    corpus = load_corpus(data, val_fraction=val_fraction, split=split, encoding=encoding,
                         errors=errors)
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

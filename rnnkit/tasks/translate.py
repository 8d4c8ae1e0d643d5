"""Translation (N→M) as a `rnnkit.tasks.base.Task`: sentence pairs in, an attention encoder-decoder
(`rnnkit.tasks.translate_model`) trained on them, greedy or beam-search translation
(`rnnkit.decode`), corpus BLEU and chrF (sacrebleu) on the held-out test sources.

>>> from rnnkit.tasks import translate as tr
>>> tr.train("../shared/data/fra-eng.txt", minutes=15, out="runs/fr")
>>> tr.translate("runs/fr", ["he is calm ."], beam=5)
>>> tr.evaluate("runs/fr", beam=5)        # {"bleu", "bleu_multi", "chrf", ...} on the test split

Metrics: ``bleu`` is single-reference corpus BLEU (each test pair: the translation of its source
against its own target), ``bleu_multi`` uses every translation of a source in the split as its
references (one hypothesis per distinct source), ``chrf`` is chrF against the multi-references.
Validation during training is greedy BLEU on ``eval_sentences`` dev pairs spread evenly over the
dev split (`dev_sample`; the primary metric: it picks the best weights) and the dev loss.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.cells import CELLS
from rnnkit.data import WordVocab, load_vocab
from rnnkit.data.atomic import atomic_path, atomic_write
from rnnkit.decode import beam_search, check_beam, greedy
from rnnkit.tasks import base
from rnnkit.tasks.base import Task
from rnnkit.tasks.translate_data import (PairBatcher, encode_sources, load_translation_data, make_batch,
                                         read_pairs, tokenize_sentence)
from rnnkit.tasks.translate_model import ATTENTIONS, Seq2Seq
from rnnkit.train import Callback, RunFolder, RunFolderError
from rnnkit.train.checkpoint import BEST
from rnnkit.train.config import check_fields, option

SRC_VOCAB, TGT_VOCAB = "src_vocab.json", "tgt_vocab.json"
TEST_METRICS, ATTENTION_PNG = "test_metrics.json", "attention.png"


@dataclass
class TranslateConfig:
    """What a translator is trained on and what it is."""

    data: str = option("fra-eng.txt", "tab-separated sentence pairs (source<TAB>target per line): a file, "
                                      "or a file name in $RNNKIT_DATA")
    reverse: bool = option(False, "translate the second column into the first")
    max_len: int = option(10, "keep pairs whose sides have at most this many words (also the input "
                              "limit when translating; longer inputs are cut with a warning)")
    max_pairs: int | None = option(None, "use only the first this many pairs left by the length filter")
    min_freq: int = option(5, "words seen fewer times in training become <unk> (on fra-eng.txt, 5 "
                              "instead of 2: a 7.6k-word target softmax instead of 14.8k, 0.6x the step "
                              "time; 3.3 target words in 100 become <unk> instead of 1.1)")
    dev_fraction: float = option(0.02, "fraction of the distinct source sentences held out for validation")
    test_fraction: float = option(0.05, "fraction of the distinct source sentences held out for the test")
    cell: str = option("gru", "recurrent cell of encoder and decoder", choices=lambda: tuple(sorted(CELLS)))
    hidden: int = option(256, "hidden units (encoder per direction, decoder)")
    embedding: int = option(256, "word embedding width")
    layers: int = option(1, "recurrent layers of encoder and decoder")
    bidirectional: bool = option(True, "bidirectional encoder")
    attention: str = option("general", "attention score: none, additive (Bahdanau), dot or general "
                                       "(Luong)", choices=ATTENTIONS)
    dropout: float = option(0.2, "dropout on embeddings, attentional vectors, between layers")
    tie_weights: bool | None = option(None, "share the target embedding with the output layer (one "
                                            "V x H matrix; none: tie when embedding == hidden)")
    teacher_forcing: float = option(1.0, "probability of feeding the gold previous word in training "
                                         "(below 1: the model's own guess otherwise, step by step, slower)")
    batch_size: int = option(32, "sentence pairs per batch (32: twice the updates of 64 for the same "
                                 "words, each at 0.58x the time; more BLEU per minute in a short run)")
    beam: int = option(5, "beam width of the final test evaluation (1: greedy only)")
    alpha: float = option(0.6, "length normalisation of beam search (Wu et al. 2016; 0: none)")
    eval_sentences: int = option(500, "dev pairs translated (greedy) at each validation for BLEU (spread "
                                      "evenly over the dev split)")

    def __post_init__(self):
        check_fields(self)
        owner = "TranslateConfig"
        for name in ("max_len", "min_freq", "hidden", "embedding", "layers", "batch_size", "beam",
                     "eval_sentences"):
            if getattr(self, name) < 1:
                raise ValueError(f"{owner}: {name} must be >= 1, got {getattr(self, name)}")
        if self.max_pairs is not None and self.max_pairs < 2:
            raise ValueError(f"{owner}: max_pairs must be >= 2 or None, got {self.max_pairs}")
        for name in ("dev_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"{owner}: {name} must be in (0, 0.5), got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{owner}: dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.teacher_forcing <= 1:
            raise ValueError(f"{owner}: teacher_forcing must be in (0, 1], got {self.teacher_forcing}")
        if self.tie_weights and self.embedding != self.hidden:
            raise ValueError(f"{owner}: tie_weights needs embedding == hidden, got embedding="
                             f"{self.embedding}, hidden={self.hidden}")
        check_beam(self.beam, self.alpha)

    def model_kwargs(self) -> dict:
        return dict(cell=self.cell, hidden=self.hidden, embedding=self.embedding, layers=self.layers,
                    bidirectional=self.bidirectional, attention=self.attention, dropout=self.dropout,
                    tie_weights=(self.embedding == self.hidden if self.tie_weights is None
                                 else self.tie_weights))


def resolve_data(spec: str) -> Path:
    """``spec`` as a path, else ``$RNNKIT_DATA/spec``; a clear error when neither is a file."""
    p = Path(spec)
    if p.is_file():
        return p
    folder = os.environ.get("RNNKIT_DATA")
    if folder and (Path(folder) / spec).is_file():
        return Path(folder) / spec
    raise FileNotFoundError(f"data: {spec!r} is not a file" + (f" nor in $RNNKIT_DATA={folder}" if folder
                            else " (and $RNNKIT_DATA is not set)") + "; expected tab-separated "
                            "sentence pairs such as ../shared/data/fra-eng.txt")


class TranslationTask(Task):
    """Sentence-pair translation (N→M) with an attention encoder-decoder."""

    name = "translate"
    Config = TranslateConfig
    primary_metric = "bleu"
    higher_is_better = True
    count_unit = "tokens"
    plot_metric, plot_label = "bleu", "dev BLEU (greedy)"

    def load_data(self, run, progress):
        cfg = self.config
        self.data = load_data(cfg, self.train_config.seed, None if run is None else read_vocabs(run))

    def build_model(self):
        d = self.data
        return Seq2Seq(len(d.src_vocab), len(d.tgt_vocab), pad_id=d.tgt_vocab.pad_id,
                       **self.config.model_kwargs())

    def describe_data(self):
        d = self.data
        n = sum(p.numel() for p in self.model.parameters())
        return (f"data: {d.name}: {len(d.train):,} training, {len(d.dev):,} dev, {len(d.test):,} test "
                f"pairs ({d.dropped_long:,} longer than {self.config.max_len} words left out); "
                f"vocabularies {len(d.src_vocab):,} source, {len(d.tgt_vocab):,} target words; "
                f"model: {n:,} parameters on {self.device}")

    def save_artifacts(self, run):
        self.data.src_vocab.to_json(run / SRC_VOCAB)
        self.data.tgt_vocab.to_json(run / TGT_VOCAB)

    def start(self):
        d, cfg = self.data, self.config
        self.batcher = PairBatcher(d.train, cfg.batch_size, d.src_vocab, d.tgt_vocab, self.train_config.seed)
        self.steps_per_epoch = len(self.batcher)
        self.generator = torch.Generator(device=self.device).manual_seed(self.train_config.seed)

    def next_batch(self):
        return self.batcher.next().to(self.device)

    def loss(self, batch):
        return self.model.loss(batch.src, batch.src_len, batch.tgt_in, batch.tgt_out,
                               teacher_forcing=self.config.teacher_forcing, generator=self.generator)

    def evaluate(self):
        d, cfg = self.data, self.config
        total, count = 0.0, 0
        for i in range(0, len(d.dev), 256):
            b = make_batch(d.dev[i:i + 256], d.src_vocab, d.tgt_vocab).to(self.device)
            s, n = self.model.loss(b.src, b.src_len, b.tgt_in, b.tgt_out)
            total, count = total + float(s), count + n
        loss = total / max(count, 1)
        part = dev_sample(d.dev, cfg.eval_sentences)
        hyps = translate_tokens(self.model, d.src_vocab, d.tgt_vocab, [p.src for p in part], cfg.max_len)
        return {"loss": loss, "ppl": math.exp(min(loss, 700)), "bleu": bleu_scores(part, hyps)["bleu"]}

    def train_metrics(self, loss):
        return {"ppl": math.exp(loss) if loss < 700 else math.inf}

    def state_dict(self):
        return {"batcher": self.batcher.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, d):
        self.batcher.load_state_dict(d["batcher"])
        self.generator.set_state(d["generator"])

    def callbacks(self):
        return [TestCallback()]

    def summary(self, best):
        return f"best validation: BLEU {best['bleu']:.2f} (greedy, dev) at step {best['step']}"

    # -- after training -----------------------------------------------------------------------------
    @classmethod
    def evaluate_run(cls, run, data=None, **options):
        known = {k: v for k, v in options.items() if k in ("split", "beam", "device") and v is not None}
        return evaluate(run, data, **known)

    @classmethod
    def format_evaluation(cls, r):
        return format_evaluation(r)

    @classmethod
    def predict(cls, run, inputs, *, device="cpu", beam=1, **options):
        return translate(run, inputs, beam=beam, device=device)


def read_vocabs(folder: RunFolder) -> tuple[WordVocab, WordVocab]:
    """A run's source and target vocabularies."""
    vocabs = []
    for name in (SRC_VOCAB, TGT_VOCAB):
        vocab = load_vocab(folder.require(name))
        if not isinstance(vocab, WordVocab):
            raise RunFolderError(f"{folder / name}: expected a word vocabulary, got a {type(vocab).__name__}")
        vocabs.append(vocab)
    return vocabs[0], vocabs[1]


def dev_sample(pairs: list, n: int) -> list:
    """``n`` pairs spread evenly over ``pairs`` (all of them when there are no more than ``n``). The
    files keep their sentences sorted by length (Tatoeba exports are), so the first ``n`` would be
    the shortest ones: one-to-three-word sentences, whose BLEU says little about the rest."""
    if len(pairs) <= n:
        return list(pairs)
    return [pairs[i * len(pairs) // n] for i in range(n)]


def load_data(cfg: TranslateConfig, seed: int, vocabs: tuple[WordVocab, WordVocab] | None = None):
    return load_translation_data(str(resolve_data(cfg.data)), reverse=cfg.reverse, max_len=cfg.max_len,
                                 max_pairs=cfg.max_pairs, min_freq=cfg.min_freq, dev=cfg.dev_fraction,
                                 test=cfg.test_fraction, seed=seed, vocabs=vocabs)


class TestCallback(Callback):
    """At the end of training: the best weights on the test split (greedy and beam), written to
    test_metrics.json, and the attention heat map of a test sentence (attention.png)."""

    def on_train_end(self, trainer, result):
        if trainer.run is None or result.best is None or result.status not in ("finished", "stopped"):
            return                # an interrupted run exits at once; `rnnkit evaluate RUN` does this later
        task = trainer.task
        r = evaluate(trainer.run.path, beam=task.config.beam, device=task.device, loaded_data=task.data)
        trainer.echo(format_evaluation(r).rstrip())


# -- the Python API ---------------------------------------------------------------------------------
def train(data: str | None = None, *, out=None, resume=None, progress: bool = True, callbacks=(),
          echo=print, **options):
    """Train a translator; returns the `rnnkit.train.FitResult` (``.run`` is the run folder)."""
    if data is not None:
        options["data"] = data
    return base.train(TranslationTask, out=out, resume=resume, progress=progress, callbacks=callbacks,
                      echo=echo, **options)


@dataclass
class LoadedTranslator:
    model: Seq2Seq
    src_vocab: WordVocab
    tgt_vocab: WordVocab
    config: TranslateConfig
    seed: int
    run: Path


def load(run, device="cpu", weights: str = BEST) -> LoadedTranslator:
    if isinstance(run, LoadedTranslator):
        return run
    folder = RunFolder(run)
    cfg, tr_cfg, model_args = TranslationTask.read_configs(folder)
    src_vocab, tgt_vocab = read_vocabs(folder)
    try:
        model = Seq2Seq(**model_args)
    except (TypeError, ValueError) as exc:
        raise RunFolderError(f"{folder.path}: bad model arguments {model_args}: {exc}") from None
    folder.load_weights(weights, model)
    return LoadedTranslator(model.to(device).eval(), src_vocab, tgt_vocab, cfg, tr_cfg.seed, folder.path)


@torch.no_grad()
def translate_tokens(model: Seq2Seq, src_vocab, tgt_vocab, sentences: list[list[str]], max_len: int, *,
                     beam: int = 1, alpha: float = 0.6, batch_size: int = 256, warn: bool = False):
    """Token lists in, token lists out (``<eos>`` and padding removed); greedy for ``beam=1``."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    stepper, out = model.stepper(), []
    limit = 2 * max_len + 2                  # outputs may be longer than inputs, not without bound
    banned = (tgt_vocab.pad_id, tgt_vocab.bos_id)
    for i in range(0, len(sentences), batch_size):
        src, src_len, _ = encode_sources(src_vocab, sentences[i:i + batch_size], max_len, warn=warn)
        scores, state = stepper.prime(src.to(dev), src_len.to(dev), tgt_vocab.bos_id)
        if beam == 1:
            ids = greedy(stepper.step, scores, state, limit, eos=tgt_vocab.eos_id, pad=tgt_vocab.pad_id,
                         banned=banned)
        else:
            ids = beam_search(stepper, scores, state, beam=beam, max_len=limit, eos=tgt_vocab.eos_id,
                              pad=tgt_vocab.pad_id, alpha=alpha, banned=banned).tokens
        for row in ids.tolist():
            words = []
            for t in row:
                if t in (tgt_vocab.eos_id, tgt_vocab.pad_id):
                    break
                words.append(tgt_vocab.tokens[t])
            out.append(words)
    model.train(was_training)
    return out


def translate(run, sentences: list[str], *, beam: int = 1, alpha: float | None = None,
              device="cpu") -> list[str]:
    """Translate raw sentences (normalised as the training data was). Words the source vocabulary
    lacks become ``<unk>`` (a warning counts them); a sentence longer than the run's ``max_len`` is
    cut, with a warning."""
    loaded = load(run, device)
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of str, got a str; wrap it in a list")
    check_beam(beam, alpha if alpha is not None else loaded.config.alpha)
    toks = [tokenize_sentence(s) for s in sentences]
    for i, t in enumerate(toks):
        if not t:
            raise ValueError(f"sentence {i + 1} is empty; expected words to translate")
    _, _, unknown = encode_sources(loaded.src_vocab, toks)
    if unknown:
        missing = sorted({w for t in toks for w in t if w not in loaded.src_vocab.index})
        warnings.warn(f"{unknown} word(s) are not in the run's source vocabulary and are read as <unk>: "
                      f"{missing[:20]}", stacklevel=2)
    hyps = translate_tokens(loaded.model, loaded.src_vocab, loaded.tgt_vocab, toks, loaded.config.max_len,
                            beam=beam, alpha=alpha if alpha is not None else loaded.config.alpha, warn=True)
    return [" ".join(h) for h in hyps]


def bleu_scores(pairs, hyps: list[list[str]]) -> dict:
    """Corpus BLEU and chrF (sacrebleu) of ``hyps`` (one per pair) against the pairs' targets:
    single-reference BLEU over the pairs, and multi-reference BLEU and chrF over distinct sources.
    Sentences are compared as the normalised, space-separated tokens (sacrebleu's default 13a
    tokenizer on top changes nothing there; ``force=True`` says the tokenisation is deliberate)."""
    import sacrebleu
    sys_out = [" ".join(h) for h in hyps]
    single = sacrebleu.corpus_bleu(sys_out, [[" ".join(p.tgt) for p in pairs]], force=True).score
    refs: dict[str, list[str]] = {}
    first: dict[str, str] = {}
    for p, h in zip(pairs, sys_out):
        key = " ".join(p.src)
        refs.setdefault(key, []).append(" ".join(p.tgt))
        first.setdefault(key, h)
    n = max(len(r) for r in refs.values())
    streams = [[r[k] if k < len(r) else None for r in refs.values()] for k in range(n)]
    hyp_multi = list(first.values())
    # sacrebleu skips a None reference (a source with fewer references); its annotations say str only
    return {"bleu": single,
            "bleu_multi": sacrebleu.corpus_bleu(hyp_multi, streams, force=True).score,  # type: ignore[arg-type]
            "chrf": sacrebleu.corpus_chrf(hyp_multi, streams).score}  # type: ignore[arg-type]


def evaluate(run, data: str | None = None, *, split: str = "test", beam: int | None = None,
             device="cpu", loaded_data=None) -> dict:
    """BLEU and chrF of the run's best weights, greedy and, with ``beam`` > 1 (default: the run's),
    beam search, and the seconds each took. Without ``data``: on a split of the run's own data
    (``test`` by default, or ``dev``), and test_metrics.json and attention.png are written into the
    run folder. With ``data`` (another pairs file): on every pair of it (``split`` is ignored; sources
    longer than the run's ``max_len`` are cut, with a warning)."""
    import time
    loaded = load(run, device)
    cfg = loaded.config
    if split not in ("test", "dev"):
        raise ValueError(f"split must be 'test' or 'dev', got {split!r}")
    if data is not None:
        path = resolve_data(data)
        pairs, name, split = read_pairs(path, reverse=cfg.reverse), path.name, "all"
    else:
        d = loaded_data or load_data(cfg, loaded.seed, (loaded.src_vocab, loaded.tgt_vocab))
        pairs, name = (d.test if split == "test" else d.dev), d.name
    beam = cfg.beam if beam is None else beam
    check_beam(beam, cfg.alpha)
    result: dict = {"data": name, "split": split, "pairs": len(pairs),
                    "sources": len({" ".join(p.src) for p in pairs})}
    for k in sorted({1, beam}):
        t = time.perf_counter()
        hyps = translate_tokens(loaded.model, loaded.src_vocab, loaded.tgt_vocab, [p.src for p in pairs],
                                cfg.max_len, beam=k, alpha=cfg.alpha, warn=data is not None)
        tag = "greedy" if k == 1 else f"beam{k}"
        result.update({f"{m}_{tag}": v for m, v in bleu_scores(pairs, hyps).items()})
        result[f"seconds_{tag}"] = time.perf_counter() - t
    if data is None and split == "test":
        folder = RunFolder(loaded.run)
        atomic_write(folder / TEST_METRICS, json.dumps(result, indent=1) + "\n")
        if loaded.model.attention is not None and pairs:
            draw_attention(loaded, pairs, folder / ATTENTION_PNG)
            result["attention_png"] = str(folder / ATTENTION_PNG)
    return result


def format_evaluation(r: dict) -> str:
    lines = [f"{r['data']} ({r['split']}: {r['pairs']:,} pairs, {r['sources']:,} distinct sources)"]
    for tag in ("greedy", *sorted(k[len("bleu_"):] for k in r if k.startswith("bleu_beam"))):
        lines.append(f"  {tag}: BLEU {r['bleu_' + tag]:.2f} (single reference), "
                     f"{r['bleu_multi_' + tag]:.2f} (all references), chrF {r['chrf_' + tag]:.2f}; "
                     f"{r['seconds_' + tag]:.1f} s")
    if "attention_png" in r:
        lines.append(f"  attention heat map: {r['attention_png']}")
    return "\n".join(lines) + "\n"


def draw_attention(loaded: LoadedTranslator, pairs, path) -> None:
    """The attention weights of the greedy translation of one test sentence (the first with at least
    five words) as a heat map PNG: target words down, source words across."""
    from matplotlib.figure import Figure
    pair = next((p for p in pairs if len(p.src) >= 5), pairs[0])
    model, sv, tv = loaded.model, loaded.src_vocab, loaded.tgt_vocab
    out = translate_tokens(model, sv, tv, [pair.src], loaded.config.max_len)[0]
    src, src_len, _ = encode_sources(sv, [pair.src], loaded.config.max_len)
    dev = next(model.parameters()).device
    tgt_in = torch.tensor([[tv.bos_id] + [tv.index.get(w, tv.unk_id) for w in out]], device=dev).t()
    with torch.no_grad():
        memory, keys, mask, state = model.encode(src.to(dev), src_len.to(dev))
        _, _, weights = model.decode(tgt_in, memory, keys, mask, state, need_weights=True)
    w = weights[0].cpu().numpy()                                  # (T, S)
    fig = Figure(figsize=(1 + 0.5 * w.shape[1], 1 + 0.45 * w.shape[0]))
    ax = fig.subplots()
    ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(w.shape[1]), [*pair.src, "<eos>"][:w.shape[1]], rotation=60, ha="right")
    ax.set_yticks(range(w.shape[0]), [*out, "<eos>"][:w.shape[0]])
    ax.set_xlabel("source")
    ax.set_ylabel("translation (greedy)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)

"""The language model as a `rnnkit.tasks.base.Task`: its data, recipe, model, batches, loss, metrics,
and its callback that writes a sample at each validation.

``batching="sequential"``: ``B`` contiguous streams; the state is carried from batch to batch
(detached: truncated backpropagation through time) and reset at each epoch.
``batching="random"``: random ``T``-step pieces; every batch starts from a zero state.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from rnnkit.data import RandomBatcher, SequentialBatcher, Vocab, load_vocab
from rnnkit.data.atomic import atomic_write
from rnnkit.data.corpora import default_split
from rnnkit.tasks.base import Task
from rnnkit.tasks.lm import recipe
from rnnkit.tasks.lm.config import LMConfig
from rnnkit.tasks.lm.data import _as_tensor, check_batch_fits, fingerprint, load_lm_data, metrics
from rnnkit.tasks.lm.model import LanguageModel, lm_loss, sum_log_loss
from rnnkit.train import Callback
from rnnkit.train.checkpoint import SAMPLES, VOCAB


class LanguageModelTask(Task):
    """Character- or word-level language modelling (N→N: each token predicts the next)."""

    name = "lm"
    Config = LMConfig
    primary_metric = "loss"          # nats per token; perplexity and bits follow from it
    higher_is_better = False
    count_unit = "tokens"
    plot_metric, plot_label = "ppl", "perplexity"

    @classmethod
    def variant(cls, config):
        """With ``condition_col``, the conditional language model (`rnnkit.tasks.lm.conditional`)."""
        if config.condition_col is not None:
            from rnnkit.tasks.lm.conditional import ConditionalLMTask
            return ConditionalLMTask
        return cls

    @classmethod
    def new_run_config(cls, config):
        """A new run's ``split=None`` becomes what it means now (`rnnkit.data.corpora.default_split`:
        blocks spread over one text, whole files of a folder), recorded: a run recorded with ``null``
        was split by the earlier rule (the tail of one text), and `load_corpus` still reads it so."""
        if config.split is None and config.val_data is None and config.condition_col is None:
            config = dataclasses.replace(config, split=default_split(config.data))
        return config

    # -- building ---------------------------------------------------------------------------------
    def load_data(self, run, progress):
        vocab = load_vocab(run.require(VOCAB)) if run is not None else None
        self.data = load_lm_data(self.config, vocab, progress=progress)
        self.vocab = self.data.vocab

    def choose(self, echo):
        self.measured = {}   # config.json's record of what the recipe measured and chose
        threads: dict = {}
        most = torch.get_num_threads()
        choose_threads = self.train_config.threads is None and self.device.type == "cpu"

        def measure(hidden: int, precision: str) -> float:
            """A probe's speed; on a CPU with the threads left to rnnkit, the first probe runs at 1
            thread and at all threads and the faster count is kept for the rest
            (`recipe.fastest_threads`)."""
            def probe() -> float:
                return recipe.probe_tokens_per_second(len(self.vocab), self.config, self.device,
                                                      hidden=hidden, precision=precision)
            if not choose_threads or threads:
                return probe()

            def at(n):
                torch.set_num_threads(n)
                return probe()
            chosen, speeds = recipe.fastest_threads(at, most)
            torch.set_num_threads(chosen)
            threads.update(chosen=chosen, speeds=speeds)
            return speeds[chosen]

        try:
            cfg, tr_cfg, why = recipe.choose(self.config, self.train_config, self.train_tokens(), measure,
                                             vocab_size=len(self.vocab), bf16=recipe.native_bf16(self.device),
                                             record=self.measured)
        finally:
            torch.set_num_threads(most)
        self.config = cfg
        self.train_config = dataclasses.replace(tr_cfg, lr=tr_cfg.learning_rate)
        if threads:     # recorded in config.json: a resumed or replayed run uses the same count
            self.train_config = dataclasses.replace(self.train_config, threads=threads["chosen"])
            self.measured["threads"] = {str(n): v for n, v in threads["speeds"].items()}
            speeds = ", ".join(f"{n} thread{'s' * (n > 1)} {v:,.0f} tokens/s"
                               for n, v in sorted(threads["speeds"].items()))
            why += f"; threads {threads['chosen']} (measured {speeds})"
        if why:
            echo(why)

    def train_tokens(self) -> int:
        """How many tokens one pass over the training data reads (what the recipe sizes by)."""
        return len(self.data.train_ids)

    def check(self):
        check_batch_fits(self.config, self.data)

    def build_model(self):
        return LanguageModel(len(self.vocab), **self.config.model_kwargs())

    def describe_data(self):
        d, cfg = self.data, self.config
        n = sum(p.numel() for p in self.model.parameters())
        return (f"data: {d.corpus.name}: {len(d.train_ids):,} training and {len(d.val_ids):,} "
                f"validation {cfg.level} tokens, vocabulary {len(self.vocab):,}; "
                f"model: {n:,} parameters on {self.device}")

    def save_artifacts(self, run):
        self.vocab.to_json(run / VOCAB)

    def config_sections(self):
        return {**super().config_sections(), "data_name": self.data.corpus.name}

    def start(self):
        cfg, data = self.config, self.data
        seed = self.train_config.seed
        if cfg.batching == "sequential":
            self.batcher = SequentialBatcher(data.train_ids, cfg.batch_size, cfg.seq_len)
        else:
            self.batcher = RandomBatcher(data.train_ids, cfg.batch_size, cfg.seq_len, seed=seed)
        self.carry = cfg.batching == "sequential"
        self.steps_per_epoch = len(self.batcher)
        self.val_ids = _as_tensor(data.val_ids)  # shares the array's memory
        self.state = None
        self._it = iter(self.batcher)
        self._fingerprint = fingerprint(data.train_ids)

    # -- the trainer's protocol -------------------------------------------------------------------
    def next_batch(self):
        try:
            x, y = next(self._it)
        except StopIteration:        # a new epoch: the streams start again from a zero state
            self.state = None
            self._it = iter(self.batcher)
            x, y = next(self._it)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def loss(self, batch):
        x, y = batch                                          # (B, T) each
        total, state = lm_loss(self.model, x, y, self.state if self.carry else None, reduction="sum")
        if self.carry:
            self.state = tuple(s.detach() for s in state)
        return total, y.numel()

    def evaluate(self):
        total, count = sum_log_loss(self.model, self.val_ids)
        return {k: v for k, v in metrics(total, count, self.data.unit).items() if k != "tokens"}

    def train_metrics(self, loss):
        return {"ppl": math.exp(loss) if loss < 700 else math.inf}

    def state_dict(self):
        state = None if self.state is None else [s.cpu() for s in self.state]
        return {"batcher": self.batcher.state_dict(), "state": state,
                "train_fingerprint": self._fingerprint}

    def load_state_dict(self, d):
        if d["train_fingerprint"] != self._fingerprint:
            raise ValueError("the training data differs from the data the run was trained on "
                             "(its token ids have another SHA-256); exact resumption needs the same data")
        self.batcher.load_state_dict(d["batcher"])
        self._it = iter(self.batcher)
        at_epoch_end = self.batcher.position >= len(self.batcher)  # the next batch starts an epoch
        if d["state"] is None or at_epoch_end:
            self.state = None
        else:
            self.state = tuple(s.to(self.device) for s in d["state"])

    def merge_shard_states(self, states: list[dict]) -> dict:
        """Distributed: the ranks' states (the same data position, each its own streams' carried
        state) as one, the streams in rank order: what a single process would hold."""
        merged = dict(states[0])
        if all(s["state"] is not None for s in states):
            merged["state"] = [torch.cat(parts, dim=1) for parts in zip(*(s["state"] for s in states))]
        else:
            merged["state"] = None
        return merged

    def take_shard(self, rank: int, world: int) -> None:
        """Keep this rank's streams of a (merged) carried state ``(L, B, H)``."""
        if self.state is not None and world > 1:
            self.state = tuple(torch.tensor_split(s, world, dim=1)[rank] for s in self.state)

    def callbacks(self):
        cfg = self.config
        if not cfg.sample_length:
            return []
        prompt = cfg.sample_prompt or default_prompt(self.vocab, self.data.corpus.val_text)
        return [SampleCallback(self.vocab, prompt, cfg.sample_length, cfg.sample_temperature,
                               self.train_config.seed)]

    def summary(self, best):
        unit = "bpw" if self.config.level == "word" else "bpc"
        return f"best validation: ppl {best['ppl']:.4f}, {unit} {best[unit]:.4f} at step {best['step']}"

    # -- after training: rnnkit evaluate / predict -----------------------------------------------
    @classmethod
    def evaluate_run(cls, run, data=None, **options):
        from rnnkit.tasks.lm.api import evaluate, read_run_config
        from rnnkit.train import RunFolder
        if read_run_config(RunFolder(run))[0].condition_col is not None:
            from rnnkit.tasks.lm.conditional import evaluate as evaluate_conditional
            return evaluate_conditional(run, data, **options)
        return evaluate(run, data, **options)

    @classmethod
    def format_evaluation(cls, r):
        bits = "bpw" if "bpw" in r else "bpc"
        unit = "word" if bits == "bpw" else "character"
        text = (f"{r['data']} ({r['split']}, {r['tokens']:,} {unit}s): perplexity {r['ppl']:.4f}, "
                f"bits per {unit} {r[bits]:.4f}, loss {r['loss']:.4f} nats\n")
        if r["unknown"]:
            shown = r["unknown"][:20]
            text += (f"note: {r['unknown_tokens']:,} tokens are not in the run's vocabulary and count "
                     f"as <unk>: {shown}{' ...' if len(r['unknown']) > 20 else ''}\n")
        return text

    @classmethod
    def predict(cls, run, inputs, *, top=5, device="cpu", **options):
        """For each text, the ``top`` most likely next tokens with their probabilities."""
        from rnnkit.tasks.lm.api import next_token_distribution, read_run_config
        from rnnkit.train import RunFolder
        if read_run_config(RunFolder(run))[0].condition_col is not None:
            raise ValueError(f"{run} is a conditional language model: write texts of a class with "
                             f"rnnkit generate {run} --condition LABEL")
        return [next_token_distribution(run, text, top=top, device=device) for text in inputs]

    @classmethod
    def format_prediction(cls, inputs, predictions):
        lines = []
        for text, pred in zip(inputs, predictions):
            shown = ", ".join(f"{tok!r} {p:.3f}" for tok, p in pred)
            lines.append(f"{text!r} -> {shown}\n")
        return "".join(lines)


class SampleCallback(Callback):
    """At each validation, sample ``length`` tokens, print them, put them in the record and rewrite
    the run's samples.txt. Its own generator, seeded by the step, leaves the training RNG alone."""

    def __init__(self, vocab: Vocab, prompt: str, length: int, temperature: float, seed: int):
        self.vocab, self.prompt, self.length = vocab, prompt, length
        self.temperature, self.seed = temperature, seed

    def on_validation(self, trainer, record: dict) -> None:
        from rnnkit.tasks.lm.api import iter_generate
        model = trainer.model
        model.eval()
        try:
            text = "".join(iter_generate((model, self.vocab), self.prompt, self.length,
                                         temperature=self.temperature,
                                         seed=self.seed * 1_000_003 + trainer.step, unk="replace"))
        finally:
            model.train()
        record["sample"] = self.prompt + text
        trainer.echo(record["sample"])
        if trainer.run is not None:
            atomic_write(trainer.run / SAMPLES, samples_text([*trainer.history, record]))


def samples_text(records: list[dict]) -> str:
    """The samples of the validation records, each under a header with its step and metrics."""
    parts = []
    for r in records:
        if r.get("split") == "val" and "sample" in r:
            shown = ", ".join(f"{k} {r[k]:.4f}" for k in ("loss", "ppl", "bpc", "bpw") if k in r)
            parts.append(f"=== step {r['step']} (validation {shown}) ===\n{r['sample']}\n")
    return "\n".join(parts)


def default_prompt(vocab: Vocab, val_text: str) -> str:
    """A few words from the start of the validation text (from its second line when the first is
    short), cut at a space: a prompt from the data's own world."""
    text = vocab.normalize(val_text[:400])
    nl = text.find("\n")
    if 0 <= nl < 100 and text[nl + 1:].strip():
        text = text[nl + 1:]
    head = text.lstrip()[:24]
    cut = head.rfind(" ")
    return head[:cut + 1] if cut > 0 else head


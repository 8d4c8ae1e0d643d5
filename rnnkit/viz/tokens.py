"""What a tagger or a text classifier computes as it reads words: every recurrent layer's hidden state,
cell state and gates, in both directions, at every word; the tagger's tag probabilities per word, the
classifier's label probabilities per text (and, with attention pooling, each word's attention weight);
and how well each unit tracks simple properties of the word sequence.

    acts = rnnkit.viz.activations("runs/ewt", "The cat sat on the mat .\\nIt was fine .")
    acts.layers[0].label, acts.layers[1].label   # "L1f", "L1b": layer 1, forward and backward
    acts.layers[1].hidden                        # (N, H): the backward direction, in reading order
    acts.probs                                   # tagger (N, K) per word; classifier (S, C) per text
    acts.correlations()                          # {"is a NOUN": (U,), "position in sentence": ...}

The states are recorded by `rnnkit.viz.record.record_stack`, the same recorder as the character
language model's, each sentence (text) read as its own sequence, as the model reads it.

Shapes: N words (tokens) over all sentences or texts, S sentences or texts, K tags, C classes, H hidden
units, U units.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnnkit.viz.record import LayerActivations, Recording, concat_records, record_stack

#: the most tags (classes) given an "is a TAG" ("label X") property, the most frequent in the text first
MAX_TAG_PROPERTIES = 20


@dataclass
class TokenActivations(Recording):
    """Everything recorded over the sentences (tagger) or texts (classifier), joined along the word
    axis: ``tokens`` ``(N,)`` as the model read them (the classifier's after its vocabulary's
    normalisation), ``segments`` ``(S,)`` ``(start, end)`` of each sentence or text in ``tokens``;
    ``labels`` the tags or classes in the model's output order; ``probs`` the tagger's ``(N, K)``
    (with a CRF: its exact marginals) or the classifier's ``(S, C)``; ``predicted`` the tagger's
    decoded tag per word ``(N,)`` or the classifier's label per text ``(S,)``; ``gold`` the same from
    the input when it carries them (CoNLL-U tags, ``text<TAB>label`` lines), else None;
    ``attention`` ``(N,)`` each word's weight in its text's attention pooling, or None."""
    task: str
    tokens: list[str]
    segments: list[tuple[int, int]]
    layers: list[LayerActivations]
    labels: list[str]
    probs: np.ndarray
    predicted: list[str]
    gold: list[str] | None
    attention: np.ndarray | None
    cell_name: str
    joiner: str = " "          # between tokens when shown: "" for a character-level classifier
    crf: bool = False

    def segment_of(self) -> np.ndarray:
        """``(N,)``: the sentence (text) each token belongs to."""
        out = np.empty(len(self.tokens), dtype=np.int64)
        for s, (a, b) in enumerate(self.segments):
            out[a:b] = s
        return out

    def token_labels(self) -> tuple[list[str], str]:
        """The tag (label) of each token that the tag properties use, and whose: the gold one where
        the input has it, else the predicted one."""
        own = self.gold if self.gold is not None else self.predicted
        whose = "gold" if self.gold is not None else "predicted"
        if self.task == "classify":
            seg = self.segment_of()
            return [own[s] for s in seg], whose
        return list(own), whose

    def properties(self) -> dict[str, np.ndarray]:
        return self._properties()[0]

    def property_meanings(self) -> dict[str, str]:
        return self._properties()[1]

    def _properties(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        N = len(self.tokens)
        labels, whose = self.token_labels()
        position = np.empty(N)
        for a, b in self.segments:
            position[a:b] = np.arange(b - a)
        values: dict[str, np.ndarray] = {}
        meanings: dict[str, str] = {}
        common = [t for t, _ in Counter(labels).most_common(MAX_TAG_PROPERTIES)]
        for t in common:
            name = f"is a {t}" if self.task == "tag" else f"label {t}"
            values[name] = np.array([float(x == t) for x in labels])
            meanings[name] = (f"1 for words whose {whose} tag is {t}, else 0" if self.task == "tag"
                              else f"1 for the words of texts whose {whose} label is {t}, else 0")
        where = "sentence" if self.task == "tag" else "text"
        values[f"position in {where}"] = position
        meanings[f"position in {where}"] = f"the word's index in its {where}: 0 for the first"
        if self.task == "tag":
            values["capitalised"] = np.array([float(w[:1].isupper()) for w in self.tokens])
            meanings["capitalised"] = "1 for words that start with a capital letter, else 0"
        return values, meanings


def is_token_model(model: Any) -> bool:
    """Whether ``model`` is a loaded tagger or classifier run (what `token_activations` reads)."""
    from rnnkit.tasks.classify.task import LoadedClassifier
    from rnnkit.tasks.tag_api import LoadedTagger
    return isinstance(model, (LoadedTagger, LoadedClassifier))


def token_activations(loaded: Any, text: Any) -> TokenActivations:
    """Record a loaded tagger or classifier over ``text``.

    Tagger: ``text`` a str, one sentence per line (split into words as ``rnnkit predict`` does), or
    sentences (`rnnkit.tasks.tag_data.Sentence`, e.g. ``read_tagged("x.conllu").sentences``, whose
    tags are taken as gold unless ``"_"``). Classifier: a str, one text per line (``text<TAB>label``
    lines, every one with a label the run knows, give gold labels), or a list of texts. Blank lines
    are skipped."""
    from rnnkit.tasks.tag_api import LoadedTagger
    if isinstance(loaded, LoadedTagger):
        return tagger_activations(loaded, text)
    return classifier_activations(loaded, text)


# -- the tagger ---------------------------------------------------------------------------------
def tag_sentences(text: Any) -> list[Any]:
    """``text`` (see `token_activations`) as tagger `Sentence`s."""
    from rnnkit.tasks.tag_api import split_words
    from rnnkit.tasks.tag_data import Sentence
    if isinstance(text, str):
        words = [split_words(line) for line in text.split("\n")]
        sentences = [Sentence(w, ["_"] * len(w), []) for w in words if w]
    else:
        sentences = [s for s in text if len(s)]
    if not sentences:
        raise ValueError(f"activations: no words to tag in {text!r:.60}; expected sentences, one per "
                         f"line")
    return sentences


@torch.no_grad()
def tagger_activations(loaded: Any, text: Any) -> TokenActivations:
    """`TokenActivations` of a tagger (``rnnkit.tasks.tag_api.load(RUN)``) over ``text``."""
    from rnnkit.tasks.tag_encode import encode, make_batch
    model, vocabs = loaded.model, loaded.vocabs
    sentences = tag_sentences(text)
    enc = encode(sentences, vocabs, max_word_chars=loaded.config.max_word_chars, with_tags=False)
    stack = model.rnn
    D = stack.num_directions
    cells = [stack.cells[k * D:(k + 1) * D] for k in range(stack.num_layers)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts, probs, predicted = [], [], []
    try:
        for i in range(len(sentences)):
            batch = make_batch(enc, [i]).to(device)
            x = model.inputs(batch).transpose(0, 1)                         # (T, 1, E + F)
            records, out = record_stack(cells, x)                           # out (T, 1, 2H)
            emissions = model.out(out[:, 0]).float()                        # (T, K)
            if model.crf is not None:
                probs.append(crf_marginals(model.crf, emissions))
                best = model.crf.decode(emissions[None], torch.ones(1, len(emissions), dtype=torch.bool,
                                                                    device=device))[0]
            else:
                probs.append(torch.softmax(emissions, dim=1))
                best = emissions.argmax(1).tolist()
            predicted += [vocabs.tags[j] for j in best]
            parts.append(records)
    finally:
        model.train(was_training)
    tokens = [w for s in sentences for w in s.words]
    gold_tags = [t for s in sentences for t in s.tags]
    gold = None if any(t == "_" for t in gold_tags) else gold_tags
    return TokenActivations("tag", tokens, _segments([len(s) for s in sentences]), concat_records(parts),
                            list(vocabs.tags), torch.cat(probs).cpu().numpy(), predicted, gold, None,
                            stack.mode.lower(), crf=model.crf is not None)


def crf_marginals(crf: Any, emissions: torch.Tensor) -> torch.Tensor:
    """``p(tag_t = k | sentence)`` ``(T, K)`` under the CRF: the gradient of its log-partition with
    respect to the emission scores ``(T, K)`` (forward-backward, done by autograd)."""
    with torch.enable_grad():
        e = emissions.detach().clone()[None].requires_grad_(True)         # (1, T, K)
        mask = torch.ones(1, e.shape[1], dtype=torch.bool, device=e.device)
        (grad,) = torch.autograd.grad(crf.log_partition(e, mask).sum(), e)
    return grad[0]


# -- the classifier -----------------------------------------------------------------------------
def classify_texts(text: Any, labels: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """``text`` (see `token_activations`) as texts, and their gold labels when every line carries one
    of ``labels`` after its last tab."""
    if isinstance(text, str):
        lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    else:
        lines = [t for t in text if t.strip()]
    if not lines:
        raise ValueError(f"activations: no text to classify in {text!r:.60}; expected one text per line")
    known = set(labels)
    split = [line.rsplit("\t", 1) for line in lines]
    if isinstance(text, str) and all(len(p) == 2 and p[1].strip() in known for p in split):
        return [p[0] for p in split], [p[1].strip() for p in split]
    return lines, None


@torch.no_grad()
def classifier_activations(loaded: Any, text: Any) -> TokenActivations:
    """`TokenActivations` of a classifier (``rnnkit.tasks.classify.load(RUN)``) over ``text``."""
    whole, vocab = loaded.model, loaded.vocab
    # an ensemble (--ensemble K): the states shown are its first member's, the probabilities the
    # whole ensemble's (what `rnnkit predict` says)
    model = getattr(whole, "first", whole)
    texts, gold = classify_texts(text, loaded.labels)
    cells = [[model.forward_layers[k].cells[0]]
             + ([model.backward_layers[k].cells[0]] if model.bidirectional else [])
             for k in range(model.layers)]
    char_level = vocab.kind == "char"
    max_len = loaded.config.max_len
    was_training = whole.training
    whole.eval()
    parts, probs, weights = [], [], []
    tokens: list[str] = []
    lengths: list[int] = []
    try:
        for n, t in enumerate(texts):
            ids = np.asarray(vocab.encode(t), dtype=np.int64)[:max_len]
            words = (list(vocab.normalize(t)) if char_level else vocab.tokenize(t))[:max_len]
            if not len(ids):
                raise ValueError(f"activations: text {n + 1} ({t!r:.40}) has no tokens; expected at least "
                                 f"one word or character")
            sub = None
            if model.subwords:     # the words' n-grams, as training and `rnnkit predict` read them
                from rnnkit.tasks.classify.subwords import encode_subwords
                sub = torch.from_numpy(encode_subwords(words[:len(ids)], model.subwords)).unsqueeze(0)
            ng = None
            if model.ngrams:       # the NB branch's word n-grams, likewise
                from rnnkit.tasks.classify.nbsvm import pad_ngrams, text_ngram_ids
                ng = pad_ngrams([text_ngram_ids(words[:len(ids)], model.ngrams)]).to(loaded.device)
            x = model.inputs(torch.from_numpy(ids).view(1, -1).to(loaded.device),
                             None if sub is None else sub.to(loaded.device))              # (T, 1, E)
            records, out = record_stack(cells, x)                                 # out (T, 1, D*H)
            length = torch.tensor([len(ids)])
            if whole is model:
                logits = model.head(model.pool(out, length))                    # (1, C)
                if ng is not None:   # the mean of the recurrent model's and the branch's probabilities
                    from rnnkit.tasks.classify.model import mean_log_probs
                    logits = mean_log_probs(torch.stack([logits, model.nb(ng)]))
            else:
                logits = whole(torch.from_numpy(ids).view(1, -1).to(loaded.device), length,
                               None if sub is None else sub.to(loaded.device), ng)
            probs.append(torch.softmax(logits.float(), dim=1))                  # (1, C)
            if model.pooling == "attention":
                weights.append(model.attention(out, torch.ones(len(ids), 1, dtype=torch.bool,
                                                               device=out.device))[:, 0])
            parts.append(records)
            tokens += words
            lengths.append(len(ids))
    finally:
        whole.train(was_training)
    p = torch.cat(probs).cpu().numpy()
    predicted = [loaded.labels[j] for j in p.argmax(1)]
    return TokenActivations("classify", tokens, _segments(lengths), concat_records(parts),
                            list(loaded.labels), p, predicted, gold,
                            torch.cat(weights).float().cpu().numpy() if weights else None,
                            model.cell, joiner="" if char_level else " ")


def _segments(lengths: Sequence[int]) -> list[tuple[int, int]]:
    ends = np.cumsum(lengths).tolist()
    return [(e - n, e) for n, e in zip(lengths, ends)]


def cut_to_words(text: Any, max_words: int, task: str) -> tuple[Any, bool]:
    """Whole sentences (texts) of ``text`` up to ``max_words`` words in all (at least the first one);
    and whether any were dropped. Words are counted as the task splits them."""
    # a str is cut by lines: the sentence (text) unit of both tasks
    if isinstance(text, str):
        from rnnkit.tasks.tag_api import split_words
        from rnnkit.data.vocab import tokenize
        count = split_words if task == "tag" else tokenize
        units: list[Any] = [line for line in text.split("\n") if line.strip()]
        sizes = [len(count(u)) for u in units]
    else:
        units, sizes = list(text), [len(u) for u in text]
    kept, total = 0, 0
    for size in sizes:
        if kept and total + size > max_words:
            break
        kept, total = kept + 1, total + size
    cut = kept < len(units)
    if isinstance(text, str):
        return "\n".join(units[:kept]), cut
    return units[:kept], cut


def read_tag_input(loaded: Any, path: str, text: str) -> Any:
    """What a tagger reads from the file ``path`` (its decoded ``text``): a CoNLL-U file's sentences
    (the run's word and tag columns; the tags, where annotated, as gold), else the text itself (one
    sentence per line)."""
    from rnnkit.tasks.tag_data import read_tagged, sniff_format
    lines = text.split("\n")
    if sniff_format(str(path), lines) != "conllu":
        return text
    if path == "-":
        raise ValueError("--text -: CoNLL-U input must be a file (give its path); plain text, one "
                         "sentence per line, may come from stdin")
    cfg = loaded.config
    return read_tagged(path, fmt="conllu", word_col=cfg.word_col, tag_col=cfg.tag_col,
                       encoding=cfg.encoding, errors=cfg.errors, need_tags=False).sentences

"""Tagging metrics: token accuracy, per-tag precision/recall/F1, and for BIO/BIOES tags the span
(chunk) precision/recall/F1 that seqeval computes by default (the CoNLL ``conlleval`` chunk rules).

Chunk rules, with a tag split into a prefix and a type (``B-PER`` -> ``B``, ``PER``; ``O`` has no type):
a chunk starts at a ``B`` or ``S``, at an ``I`` or ``E`` that follows ``O``, ``E`` or ``S`` (a lenient
reading of a chunk that lacks its ``B``), and wherever the type changes; it ends before a ``B``,
``S`` or ``O``, after an ``E`` or ``S``, and wherever the type changes. A predicted span counts when
a gold span has the same type, start and end.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

_BIO = re.compile(r"[BIES]-.+")


def is_bio(tags) -> bool:
    """Whether a tag set is BIO/BIOES: every tag ``O`` or ``B-``/``I-``/``E-``/``S-`` + a type, with
    at least one typed tag."""
    tags = set(tags)
    typed = {t for t in tags if _BIO.fullmatch(t)}
    return bool(typed) and tags <= typed | {"O"}


def _split(tag: str) -> tuple[str, str]:
    if tag == "O" or not _BIO.fullmatch(tag):
        return "O", ""
    return tag[0], tag[2:]


def _ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Whether a chunk ends between the previous tag and this one."""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type


def _starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Whether a chunk starts at this tag."""
    if cur in ("B", "S"):
        return True
    if cur in ("I", "E") and prev in ("O", "E", "S"):
        return True
    return cur != "O" and prev_type != cur_type


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of one sentence as ``(type, first, last)`` (inclusive word indices)."""
    out = []
    start, prev, prev_type = None, "O", ""
    for i, tag in enumerate([*tags, "O"]):     # a final O closes the last chunk
        cur, cur_type = _split(tag)
        if start is not None and _ends(prev, prev_type, cur, cur_type):
            out.append((prev_type, start, i - 1))
            start = None
        if _starts(prev, prev_type, cur, cur_type):
            start = i
        prev, prev_type = cur, cur_type
    return out


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "support": n_gold}


def span_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Micro span precision/recall/F1 over sentences, and the same per type (``"types"``)."""
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    for g, p in zip(gold, pred):
        gs, ps = set(spans(g)), set(spans(p))
        n_gold.update(t for t, _, _ in gs)
        n_pred.update(t for t, _, _ in ps)
        tp.update(t for t, _, _ in gs & ps)
    total: dict[str, Any] = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    total["types"] = {t: _prf(tp[t], n_pred[t], n_gold[t]) for t in sorted(set(n_gold) | set(n_pred))}
    return total


def tag_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Token accuracy, and precision/recall/F1 of each tag as a class (``"tags"``)."""
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    for g, p in zip(gold, pred):
        for a, b in zip(g, p):
            n_gold[a] += 1
            n_pred[b] += 1
            tp[a] += a == b
    n = sum(n_gold.values())
    return {"accuracy": sum(tp.values()) / n if n else 0.0, "tokens": n,
            "tags": {t: _prf(tp[t], n_pred[t], n_gold[t]) for t in sorted(set(n_gold) | set(n_pred))}}

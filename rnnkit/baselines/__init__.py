"""Baselines a neural model should beat: a Kneser-Ney character n-gram model."""
from rnnkit.baselines.ngram import KneserNeyLM

__all__ = ["KneserNeyLM"]

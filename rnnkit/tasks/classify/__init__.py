"""Text classification (N→1): ``rnnkit train --task classify --data PATH``.

>>> from rnnkit.tasks import classify
>>> result = classify.train(data="sentiment.tsv", out="runs/sent")   # defaults: word BiGRU, subwords
>>> classify.predict("runs/sent", ["a great phone", "it broke in a day"])   # [[(label, p), ...], ...]
>>> classify.evaluate("runs/sent", "other.tsv")   # accuracy, macro-F1, confusion, ...
"""
from __future__ import annotations

from rnnkit.tasks import base
from rnnkit.tasks.classify.config import ClassifyConfig
from rnnkit.tasks.classify.model import TextClassifier
from rnnkit.tasks.classify.task import ClassifyTask, load, predict_proba

__all__ = ["ClassifyConfig", "ClassifyTask", "TextClassifier", "evaluate", "load", "predict",
           "predict_proba", "train"]


def train(*, out=None, resume=None, progress: bool = True, callbacks=(), echo=print, **options):
    """Train a classifier; ``options`` are `ClassifyConfig`'s and `rnnkit.train.TrainConfig`'s fields.
    Returns the `rnnkit.train.FitResult` (``.run`` is the run folder)."""
    return base.train(ClassifyTask, out=out, resume=resume, progress=progress, callbacks=callbacks,
                      echo=echo, **options)


def evaluate(run, data=None, **options) -> dict:
    """Accuracy, macro-F1, per-class scores and the confusion matrix (`ClassifyTask.evaluate_run`)."""
    return ClassifyTask.evaluate_run(run, data, **options)


def predict(run, texts, **options) -> list:
    """Each text's labels with their probabilities, the most likely first."""
    return ClassifyTask.predict(run, list(texts), **options)

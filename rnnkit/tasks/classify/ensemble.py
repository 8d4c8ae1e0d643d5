"""`ClassifierEnsemble`: ``K`` text classifiers of the same shape, trained side by side on the same
batches, whose class probabilities are averaged.

The members differ in their random initial weights and dropout masks, so they make partly different
mistakes, and the mean of their probabilities is usually steadier than one model's (on the sentiment
benchmark, 10-fold cross-validated, 3 members were no better on average than one: README; so the
default is one model). Each member
is trained on its own loss (the training loss is the mean of the members' cross-entropies, so no member
sees another's outputs); validation, early stopping and the best weights use the averaged prediction.

``forward`` returns ``log(mean_k softmax(logits_k))`` ``(B, C)``: log-probabilities, so a softmax over
them gives the ensemble's probabilities and their argmax its label, exactly as for one
`TextClassifier`'s logits; `member_logits` gives each member's own ``(K, B, C)``. The attributes the
rest of rnnkit reads of a classifier (``vocab_size``, ``num_classes``, ``subwords``, ...) are the
members' (all the same). `rnnkit explain` shows the first member (`first`); `rnnkit export` exports the
whole ensemble as one graph.
"""
from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from rnnkit.tasks.classify.model import TextClassifier, mean_log_probs

#: the attributes of a `TextClassifier` an ensemble answers with its members' (the same in each)
SHARED = ("vocab_size", "num_classes", "cell", "hidden", "layers", "embedding_size", "bidirectional",
          "pooling", "dropout", "subwords", "ngrams", "num_directions", "cell_kwargs")


class ClassifierEnsemble(nn.Module):
    """``forward(ids (B, T), lengths (B,), subwords (B, T, K) | None) -> log mean probabilities (B, C)``
    of ``members`` `TextClassifier` s built with ``kwargs`` (each from the RNG's next draws)."""

    def __init__(self, members: int, vocab_size: int, num_classes: int, **kwargs):
        super().__init__()
        if isinstance(members, bool) or not isinstance(members, int) or members < 2:
            raise ValueError(f"ClassifierEnsemble: members must be an int >= 2 (one model is a "
                             f"TextClassifier), got {members!r}")
        self.members = nn.ModuleList(TextClassifier(vocab_size, num_classes, **kwargs)
                                     for _ in range(members))

    def __getattr__(self, name: str):
        if name in SHARED:
            return getattr(self.members[0], name)
        return super().__getattr__(name)

    @property
    def first(self) -> TextClassifier:
        """The first member (what `rnnkit explain` shows of an ensemble)."""
        return cast(TextClassifier, self.members[0])

    def member_logits(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                      ngrams: Tensor | None = None) -> Tensor:
        """Each member's recurrent logits ``(K, B, C)`` (without the n-gram branch: what each member
        learns from)."""
        return torch.stack([cast(TextClassifier, m).branch_logits(ids, lengths, subwords, ngrams)[0]
                            for m in self.members])

    def forward(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                ngrams: Tensor | None = None) -> Tensor:
        return mean_log_probs(torch.stack([m(ids, lengths, subwords, ngrams) for m in self.members]))

    def recurrent_log_probs(self, ids: Tensor, lengths: Tensor, subwords: Tensor | None = None,
                            ngrams: Tensor | None = None) -> Tensor:
        """The members' averaged recurrent probabilities, without the n-gram branch, as logs ``(B, C)``."""
        return mean_log_probs(self.member_logits(ids, lengths, subwords, ngrams))

    def config(self) -> dict:
        """The constructor arguments (what ``config.json`` records)."""
        return {"ensemble": len(self.members), **self.first.config()}


def build_classifier(vocab_size: int, num_classes: int, ensemble: int = 1,
                     **kwargs) -> TextClassifier | ClassifierEnsemble:
    """A `TextClassifier` (``ensemble`` 1) or a `ClassifierEnsemble` of ``ensemble`` of them: what
    ``config.json``'s model arguments rebuild (a run from before ensembles has no ``ensemble``)."""
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
        raise ValueError(f"build_classifier: ensemble must be an int >= 1, got {ensemble!r}")
    if ensemble == 1:
        return TextClassifier(vocab_size, num_classes, **kwargs)
    return ClassifierEnsemble(ensemble, vocab_size, num_classes, **kwargs)

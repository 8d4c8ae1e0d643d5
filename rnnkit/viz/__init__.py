"""Plots and reports: training curves (`plot_history`); what a language model, a tagger or a classifier
computes over a text (`activations`) and the HTML report of it (`render_report`, what ``rnnkit explain``
writes)."""
from rnnkit.viz.activations import Activations, activations
from rnnkit.viz.history import plot_history
from rnnkit.viz.report import build_report, render_report
from rnnkit.viz.tokens import TokenActivations

__all__ = ["plot_history", "activations", "Activations", "TokenActivations", "build_report",
           "render_report"]

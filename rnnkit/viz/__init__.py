"""Plots and reports: training curves (`plot_history`); what a language model computes over a text
(`activations`) and the HTML report of it (`render_report`, what ``rnnkit explain`` writes)."""
from rnnkit.viz.activations import Activations, activations
from rnnkit.viz.history import plot_history
from rnnkit.viz.report import render_report

__all__ = ["plot_history", "activations", "Activations", "render_report"]

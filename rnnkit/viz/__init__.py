"""Plots: training curves (`plot_history`)."""
from rnnkit.viz.history import plot_history

__all__ = ["plot_history"]

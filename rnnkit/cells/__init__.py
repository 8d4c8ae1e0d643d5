"""Recurrent cells: parameters and a single time step (the engine in `rnnkit.core` owns time)."""
from rnnkit.cells.base import Cell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.rnn import SimpleRNNCell

#: cell families by the names the engine, the front doors and the CLI use
CELLS = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}

__all__ = ["Cell", "SimpleRNNCell", "LSTMCell", "GRUCell", "CELLS"]

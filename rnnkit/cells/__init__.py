"""Recurrent cells: parameters and a single time step (the engine in `rnnkit.core` owns time)."""
from rnnkit.cells.base import Cell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.indrnn import IndRNNCell
from rnnkit.cells.layernorm import LayerNormGRUCell, LayerNormLSTMCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.minimal import MinGRUCell, MinLSTMCell
from rnnkit.cells.rnn import SimpleRNNCell

#: cell families by the names the engine, the front doors and the CLI use
CELLS = {"rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell,
         "lnlstm": LayerNormLSTMCell, "lngru": LayerNormGRUCell, "indrnn": IndRNNCell,
         "mingru": MinGRUCell, "minlstm": MinLSTMCell}

__all__ = [
         "CELLS",
         "Cell",
         "GRUCell",
         "IndRNNCell",
         "LSTMCell",
         "LayerNormGRUCell",
         "LayerNormLSTMCell",
         "MinGRUCell",
         "MinLSTMCell",
         "SimpleRNNCell",
]

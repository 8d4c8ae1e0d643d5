"""The PyTorch-style front door: drop-in replacements for `torch.nn`'s recurrent modules."""
from rnnkit.nn.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.nn.modern import IndRNN, LayerNormGRU, LayerNormLSTM, MinGRU, MinLSTM
from rnnkit.nn.recurrent import GRU, LSTM, RNN

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "LayerNormLSTM", "LayerNormGRU", "IndRNN", "MinGRU", "MinLSTM"]

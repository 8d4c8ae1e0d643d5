"""rnnkit: a complete, fast recurrent-neural-network toolkit on PyTorch."""

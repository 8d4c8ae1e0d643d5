"""Decoding: turning a model's next-token distributions into sequences, on one stepping contract
(`rnnkit.decode.stepper`: prime with a prefix or an encoder state, then
``step(tokens, state) -> (log-probabilities, state)``).

- `sampling`: greedy decoding and sampling with temperature / top-k / top-p -- the one sampling loop;
- `beam`: batched beam search with Wu et al.'s length normalisation;
- `sampler`: `Sampler`, the fast stepper of an embedding -> recurrent stack -> linear language model.
"""
from rnnkit.decode.beam import BeamResult, beam_search, check_beam, length_penalty
from rnnkit.decode.sampling import (check_sampling, filter_logits, greedy, sample, sample_next,
                                    sample_tokens)
from rnnkit.decode.sampler import Sampler
from rnnkit.decode.stepper import Stepper, reorder_rows

__all__ = ["BeamResult", "Sampler", "Stepper", "beam_search", "check_beam", "check_sampling", "filter_logits",
           "greedy", "length_penalty", "reorder_rows", "sample", "sample_next", "sample_tokens"]

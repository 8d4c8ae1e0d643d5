"""The attention encoder-decoder: attention weights and masks, padding invariance, the loss at real
positions against the plain full cross-entropy, the stepper against the teacher-forced decoder, and
beam 1 against greedy on it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit.decode import beam_search, greedy
from rnnkit.tasks.translate_model import ATTENTIONS, Seq2Seq

PAD, BOS, EOS = 1, 2, 3
VS, VT = 17, 19


def model(attention="general", cell="gru", **kw):
    torch.manual_seed(0)
    return Seq2Seq(VS, VT, cell=cell, hidden=12, embedding=10, attention=attention, dropout=0.0,
                   pad_id=PAD, **kw).double().eval()


def batch():
    g = torch.Generator().manual_seed(1)
    src_len = torch.tensor([6, 2, 4])
    src = torch.randint(4, VS, (6, 3), generator=g)
    for b, n in enumerate(src_len.tolist()):
        src[n:, b] = PAD
    tgt = torch.randint(4, VT, (5, 3), generator=g)
    tgt_in = torch.cat([torch.full((1, 3), BOS), tgt[:-1]])
    tgt_out = tgt.clone()
    tgt_out[3:, 1] = PAD                                   # row 1 has a shorter target
    tgt_in[4:, 1] = PAD
    return src, src_len, tgt_in, tgt_out


@pytest.mark.parametrize("attention", [a for a in ATTENTIONS if a != "none"])
def test_attention_weights_sum_to_one_over_real_positions_and_are_zero_on_padding(attention):
    m = model(attention)
    src, src_len, tgt_in, _ = batch()
    memory, keys, mask, state = m.encode(src, src_len)
    _, _, w = m.decode(tgt_in, memory, keys, mask, state, need_weights=True)   # (B, T, S)
    for b, n in enumerate(src_len.tolist()):
        torch.testing.assert_close(w[b, :, :n].sum(-1), torch.ones(w.shape[1], dtype=w.dtype))
        assert (w[b, :, n:] == 0).all()


def test_dot_attention_equals_torch_scaled_dot_product_attention():
    m = model("dot")
    src, src_len, tgt_in, _ = batch()
    memory, keys, mask, state = m.encode(src, src_len)
    out, _ = m.decoder(m.tgt_embed(tgt_in), state)
    q = out.transpose(0, 1)
    ctx, _ = m.attention(q, keys, memory, mask)
    want = F.scaled_dot_product_attention(q, memory, memory, attn_mask=mask.unsqueeze(1), scale=1.0)
    torch.testing.assert_close(ctx, want)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_sentence_scores_the_same_alone_and_in_a_padded_batch(attention, cell):
    m = model(attention, cell)
    src, src_len, tgt_in, tgt_out = batch()
    loss, count = m.loss(src, src_len, tgt_in, tgt_out)
    alone = [m.loss(src[:n, b:b + 1], src_len[b:b + 1], tgt_in[:, b:b + 1], tgt_out[:, b:b + 1])
             for b, n in enumerate(src_len.tolist())]
    torch.testing.assert_close(loss, sum(a[0] for a in alone))
    assert count == sum(a[1] for a in alone) == int((tgt_out != PAD).sum())


def test_the_loss_at_real_positions_equals_the_full_cross_entropy_ignoring_padding():
    m = model("additive", layers=2)
    src, src_len, tgt_in, tgt_out = batch()
    loss, _ = m.loss(src, src_len, tgt_in, tgt_out)
    memory, keys, mask, state = m.encode(src, src_len)
    h, _, _ = m.decode(tgt_in, memory, keys, mask, state)
    full = m.head(h)                                                    # (B, T, V) at every position
    want = F.cross_entropy(full.reshape(-1, VT), tgt_out.t().reshape(-1), ignore_index=PAD, reduction="sum")
    torch.testing.assert_close(loss, want)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_the_stepper_gives_the_teacher_forced_distributions(attention, cell):
    m = model(attention, cell, layers=2)
    src, src_len, tgt_in, _ = batch()
    memory, keys, mask, state = m.encode(src, src_len)
    h, _, _ = m.decode(tgt_in, memory, keys, mask, state)
    want = torch.log_softmax(m.head(h), -1)                             # (B, T, V)
    stepper = m.stepper()
    logp, st = stepper.prime(src, src_len, BOS)
    for t in range(tgt_in.shape[0]):
        torch.testing.assert_close(logp, want[:, t], msg=f"step {t}")
        if t + 1 < tgt_in.shape[0]:
            logp, st = stepper.step(tgt_in[t + 1], st)


@pytest.mark.parametrize("attention", ["none", "general"])
def test_beam_one_equals_greedy_on_the_translator(attention):
    m = model(attention, "lstm")
    src, src_len, _, _ = batch()
    stepper = m.stepper()
    g = greedy(stepper.step, *stepper.prime(src, src_len, BOS), 12, eos=EOS, pad=PAD)
    b = beam_search(stepper, *stepper.prime(src, src_len, BOS), beam=1, max_len=12, eos=EOS, pad=PAD)
    T = max(g.shape[1], b.tokens.shape[1])
    pad = lambda x: F.pad(x, (0, T - x.shape[1]), value=PAD)
    assert torch.equal(pad(g), pad(b.tokens))


def test_scheduled_sampling_with_ratio_one_equals_teacher_forcing():
    m = model("general")
    src, src_len, tgt_in, tgt_out = batch()
    memory, keys, mask, state = m.encode(src, src_len)
    stepwise = m._decode_scheduled(tgt_in, memory, keys, mask, state, 1.0, None)
    parallel, _, _ = m.decode(tgt_in, memory, keys, mask, state)
    torch.testing.assert_close(stepwise, parallel)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2Seq(10, 10, attention="luong")
    with pytest.raises(ValueError, match="unknown cell 'tree'"):
        Seq2Seq(10, 10, cell="tree")


def test_tied_weights_get_the_gradients_of_both_untied_uses():
    """One matrix as target embedding and output layer: its gradient is the sum of the gradients the
    two would get apart (an untied copy with the same values)."""
    tied = Seq2Seq(VS, VT, hidden=12, embedding=12, dropout=0.0, pad_id=PAD, tie_weights=True).double()
    assert tied.head.weight is tied.tgt_embed.weight
    assert sum(p.numel() for p in tied.parameters()) == sum(
        p.numel() for n, p in tied.named_parameters(remove_duplicate=False) if n != "head.weight")
    apart = Seq2Seq(VS, VT, hidden=12, embedding=12, dropout=0.0, pad_id=PAD).double()
    apart.load_state_dict(tied.state_dict())
    assert apart.head.weight is not apart.tgt_embed.weight
    src, src_len, tgt_in, tgt_out = batch()
    tied.loss(src, src_len, tgt_in, tgt_out)[0].backward()
    apart.loss(src, src_len, tgt_in, tgt_out)[0].backward()
    torch.testing.assert_close(tied.head.weight.grad, apart.head.weight.grad + apart.tgt_embed.weight.grad)
    torch.testing.assert_close(tied.encoder.parameters().__next__().grad,
                               apart.encoder.parameters().__next__().grad)


def test_tied_weights_start_small_with_a_zero_padding_row():
    m = Seq2Seq(VS, VT, hidden=12, embedding=12, pad_id=PAD, tie_weights=True)
    w = m.head.weight
    assert float(w.detach().abs().max()) <= 0.1 and bool((w[PAD] == 0).all())


def test_tie_weights_needs_equal_widths():
    with pytest.raises(ValueError, match="tie_weights needs embedding == hidden.*embedding=8, hidden=12"):
        Seq2Seq(VS, VT, hidden=12, embedding=8, tie_weights=True)

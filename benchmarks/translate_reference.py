"""A plain PyTorch translator, the textbook way, trained for a number of steps on rnnkit's data split
and vocabularies and scored with rnnkit's BLEU: the reference that `rnnkit`'s translation defaults are
compared with at equal step counts (`benchmarks/translate_steps.py` trains rnnkit's model the same way).

The model (Luong et al. 2015, as PyTorch's seq2seq tutorials write it): embedding -> one-layer GRU
encoder (unidirectional, packed); the decoder GRU starts from the encoder's final state, runs one word
at a time, scores its output against the encoder outputs with Luong's *general* score, and the
attentional vector ``tanh(W_c [context; h_t])`` feeds the output layer (the whole target vocabulary,
cross-entropy with ``ignore_index`` for padding). Adam at a constant rate, gradient norm clipped.

    RNNKIT_DATA=../shared/data python benchmarks/translate_reference.py --steps 600 --evals 200,400,600

prints the dev BLEU (greedy, single reference, 500 dev pairs spread over the split -- what the
translation task validates with) at each checkpoint and the mean seconds per training step (one thread
by default).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rnnkit.tasks.translate import TranslateConfig, bleu_scores, dev_sample, load_data  # noqa: E402
from rnnkit.tasks.translate_data import PairBatcher, encode_sources  # noqa: E402


class Encoder(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, dropout: float, pad: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding, padding_idx=pad)
        self.rnn = nn.GRU(embedding, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, src, src_len):                        # (S, B), (B,)
        packed = pack_padded_sequence(self.drop(self.embed(src)), src_len, enforce_sorted=False)
        out, h = self.rnn(packed)
        out, _ = pad_packed_sequence(out, total_length=src.shape[0])
        return out.transpose(0, 1), h                        # (B, S, H), (1, B, H)


class LuongDecoder(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, dropout: float, pad: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding, padding_idx=pad)
        self.rnn = nn.GRU(embedding, hidden)
        self.score = nn.Linear(hidden, hidden, bias=False)   # "general": h_t . W m_s
        self.concat = nn.Linear(2 * hidden, hidden)
        self.out = nn.Linear(hidden, vocab)
        self.drop = nn.Dropout(dropout)

    def forward(self, token, h, memory, mask):               # (B,), (1, B, H), (B, S, H), (B, S)
        o, h = self.rnn(self.drop(self.embed(token)).unsqueeze(0), h)
        q = o[0]                                              # (B, H)
        scores = torch.bmm(self.score(memory), q.unsqueeze(-1)).squeeze(-1)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        att = torch.tanh(self.concat(torch.cat([context, q], -1)))
        return self.out(self.drop(att)), h                   # logits (B, V)


class Translator(nn.Module):
    def __init__(self, vs: int, vt: int, embedding=256, hidden=256, dropout=0.1, pad=1):
        super().__init__()
        self.pad = pad
        self.encoder = Encoder(vs, embedding, hidden, dropout, pad)
        self.decoder = LuongDecoder(vt, embedding, hidden, dropout, pad)

    def mask(self, src_len, S):
        return torch.arange(S).unsqueeze(0) < src_len.unsqueeze(1)

    def loss(self, src, src_len, tgt_in, tgt_out):
        memory, h = self.encoder(src, src_len)
        mask = self.mask(src_len, src.shape[0])
        logits = []
        for t in range(tgt_in.shape[0]):
            out, h = self.decoder(tgt_in[t], h, memory, mask)
            logits.append(out)
        logits = torch.stack(logits)                         # (T, B, V)
        return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=self.pad)

    @torch.no_grad()
    def greedy(self, src, src_len, bos: int, eos: int, limit: int) -> list[list[int]]:
        memory, h = self.encoder(src, src_len)
        mask = self.mask(src_len, src.shape[0])
        token = torch.full((src.shape[1],), bos, dtype=torch.long)
        out, done = [], torch.zeros(src.shape[1], dtype=torch.bool)
        for _ in range(limit):
            logits, h = self.decoder(token, h, memory, mask)
            token = logits.argmax(-1)
            out.append(token)
            done |= token == eos
            if done.all():
                break
        rows = torch.stack(out, 1).tolist()
        return [r[:r.index(eos)] if eos in r else r for r in rows]


def dev_bleu(model, data, pairs, max_len) -> float:
    model.eval()
    sv, tv = data.src_vocab, data.tgt_vocab
    hyps = []
    for i in range(0, len(pairs), 256):
        src, src_len, _ = encode_sources(sv, [p.src for p in pairs[i:i + 256]], max_len)
        for row in model.greedy(src, src_len, tv.bos_id, tv.eos_id, 2 * max_len + 2):
            hyps.append([tv.tokens[t] for t in row])
    model.train()
    return bleu_scores(pairs, hyps)["bleu"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--evals", default="200,400,600", help="steps at which to score the dev pairs")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TranslateConfig()
    data = load_data(cfg, args.seed)
    torch.manual_seed(args.seed)
    model = Translator(len(data.src_vocab), len(data.tgt_vocab), dropout=args.dropout,
                       pad=data.tgt_vocab.pad_id)
    opt = torch.optim.Adam(model.parameters(), args.lr)
    batches = PairBatcher(data.train, args.batch_size, data.src_vocab, data.tgt_vocab, args.seed)
    evals = {int(x) for x in args.evals.split(",")}
    spent = 0.0
    for step in range(1, args.steps + 1):
        t = time.perf_counter()
        b = batches.next()
        loss = model.loss(b.src, b.src_len, b.tgt_in, b.tgt_out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        spent += time.perf_counter() - t
        if step in evals:
            bleu = dev_bleu(model, data, dev_sample(data.dev, cfg.eval_sentences), cfg.max_len)
            print(f"plain PyTorch reference: step {step}, loss {float(loss):.3f}, dev BLEU {bleu:.2f}, "
                  f"{spent / step:.3f} s/step", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("RNNKIT_DATA", str(ROOT.parent / "shared" / "data"))
    main()

"""Run by test_export_tasks.py in a fresh interpreter (``python -I -S``) that sees torch but not rnnkit:
loads the .pt2 graphs of an export folder with ``torch.export.load`` alone, runs each call it is given
and, for a translation export, decodes greedily with the encoder and the one-step decoder; saves what
it computed for the test to compare.

usage: python -I -S fresh_graphs.py TORCH_SITE_PACKAGES EXPORT_DIR INPUTS.pt OUTPUTS.pt

INPUTS.pt: ``{"calls": [(graph name, [input tensors]), ...], "greedy": None or {"src", "src_len",
"steps", "n_state"}}``.
"""
import importlib.util
import sys

sys.path.append(sys.argv[1])  # torch's site-packages only: no .pth files, so no editable rnnkit

import torch  # noqa: E402

if importlib.util.find_spec("rnnkit") is not None:
    raise SystemExit("rnnkit is importable in the fresh process; the test would prove nothing")

export_dir, inputs_path, outputs_path = sys.argv[2:5]
d = torch.load(inputs_path, weights_only=True)
graphs = {}


def graph(name):
    if name not in graphs:
        graphs[name] = torch.export.load(f"{export_dir}/{name}.pt2").module()
    return graphs[name]


out = {"calls": [], "greedy": None}
with torch.no_grad():
    for name, inputs in d["calls"]:
        out["calls"].append(list(graph(name)(*inputs)))
    g = d["greedy"]
    if g is not None:  # encoder once, then the decoder step fed its own argmax
        n = int(g["n_state"])
        memory, keys, mask, *state = graph("encoder")(g["src"], g["src_len"])
        token = torch.full((len(g["src"]),), int(g["bos"]), dtype=torch.long)
        tokens, log_probs = [], []
        for _ in range(int(g["steps"])):
            lp, *rest = graph("decoder")(token, *state, memory, keys, mask)
            state = rest[:n]
            token = lp.argmax(-1)
            tokens.append(token)
            log_probs.append(lp)
        out["greedy"] = {"tokens": torch.stack(tokens, 1), "log_probs": torch.stack(log_probs, 1)}
out["modules"] = sorted(sys.modules)
torch.save(out, outputs_path)

"""Run by test_export_cells.py in a fresh interpreter (``python -I -S``) that sees torch but not rnnkit:
loads model.pt2 and step.pt2 with ``torch.export.load`` alone, scores a batch of sequences and
generates greedily, and saves what it computed for the test to compare.

usage: python -I -S fresh_process.py TORCH_SITE_PACKAGES EXPORT_DIR INPUTS.pt OUTPUTS.pt
"""
import importlib.util
import sys

sys.path.append(sys.argv[1])  # torch's site-packages only: no .pth files, so no editable rnnkit

import torch  # noqa: E402

if importlib.util.find_spec("rnnkit") is not None:
    raise SystemExit("rnnkit is importable in the fresh process; the test would prove nothing")

export_dir, inputs_path, outputs_path = sys.argv[2:5]
model = torch.export.load(f"{export_dir}/model.pt2").module()
step = torch.export.load(f"{export_dir}/step.pt2").module()
d = torch.load(inputs_path, weights_only=True)
with torch.no_grad():
    logits, *state = model(d["ids"], *d["state"])
    prompt_logits, *gen_state = model(d["prompt"], *d["zero_state"])
    next_logits = prompt_logits[:, -1]
    tokens, step_logits = [], []
    for _ in range(int(d["steps"])):
        token = next_logits.argmax(-1)                  # greedy
        tokens.append(token)
        next_logits, *gen_state = step(token, *gen_state)
        step_logits.append(next_logits)
torch.save({"logits": logits, "state": state, "tokens": torch.stack(tokens, 1),
            "step_logits": torch.stack(step_logits, 1), "modules": sorted(sys.modules)}, outputs_path)

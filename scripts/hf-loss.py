#!/usr/bin/env python3
"""Mean next-token cross-entropy of an HF model folder in transformers, for checking an export:

    toolkit export --checkpoint CKPT --format hf --out HF
    toolkit eval --checkpoint CKPT --tokens TOKENS.json --json   # the toolkit's loss
    python scripts/hf-loss.py HF TOKENS.json                     # transformers' loss (should agree to ~1e-6)

TOKENS.json is a JSON array of equal-length token-id arrays, scored as `toolkit eval --tokens` does
(labels = ids, HF shifts them; float32, eager attention, eval mode). Needs torch and transformers.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], attn_implementation="eager").float().eval()
    with open(sys.argv[2]) as f:
        ids = torch.tensor(json.load(f))
    with torch.no_grad():
        loss = model(ids, labels=ids).loss
    print(json.dumps({"model": type(model).__name__, "loss": float(loss), "tokens": int(ids.numel() - ids.shape[0])}))


if __name__ == "__main__":
    main()

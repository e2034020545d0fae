#!/usr/bin/env python3
"""PyTorch eager decoding at batch 1 with a KV cache, for comparison with `toolkit bench generate`.

Builds HF GPT-2 with the shape of Recipes/gpt2.yaml (6 layers, hidden 384, 6 heads, context 256,
vocab 8192, random weights), feeds a 64-token prompt, then decodes 128 tokens greedily one at a
time with `past_key_values` (what `model.generate` does, without its bookkeeping), fp32, 2 threads.
Prints prefill and decode tokens/s (median of --repeats). Not used by tests; needs torch and
transformers (e.g. pip install torch==2.13.0+cpu transformers).

    python3 scripts/bench-torch-generate.py [--prompt-len 64 --new-tokens 128 --repeats 5]
"""
import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=8192, n_positions=256, n_embd=384, n_layer=6, n_head=6, n_inner=1536,
                     activation_function="gelu_new", resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, a.prompt_len))
    pre, dec = [], []
    with torch.inference_mode():
        for r in range(a.repeats + 1):  # the first run warms up
            t0 = time.perf_counter()
            out = model(prompt, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t1 = time.perf_counter()
            past = out.past_key_values
            for _ in range(a.new_tokens - 1):
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t2 = time.perf_counter()
            if r:
                pre.append(a.prompt_len / (t1 - t0))
                dec.append((a.new_tokens - 1) / (t2 - t1))
    print(f"torch {torch.__version__} eager: prefill {statistics.median(pre):.1f} tok/s, "
          f"decode {statistics.median(dec):.1f} tok/s (batch 1, prompt {a.prompt_len}, {a.new_tokens} new tokens, "
          f"median of {a.repeats})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch baseline for `toolkit bench train`: training tokens/s of the same model and step.

Builds the HF equivalent of a toolkit recipe (Recipes/<name>.yaml: gpt2 -> GPT2LMHeadModel,
qwen3 -> Qwen3ForCausalLM), float32, and times full training steps exactly as
Sources/ToolkitCLI/Commands/BenchTrain.swift does:
  * context length = --seq-len (the learned position table too), B x T random input ids and random
    targets (no shift), loss = mean cross-entropy over all B*T positions
  * AdamW, lr 1e-4 constant, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on 2-D weights except
    embeddings (norms, biases and embeddings undecayed), global-norm clipping at 1.0
    (TrainSettings defaults)
  * 2 warm-up steps, then --steps timed steps; a step's time runs from the end of the previous step to
    the end of this one (batch, zero_grad, forward, backward, clip, optimizer step); the median is reported
  * --threads torch threads (default 2, the machine's core count)
Modes: `eager` (HF default sdpa attention) and, with --compile, `compile` (torch.compile of the
model; skipped with a message when inductor cannot build on this machine).

Usage:
    python scripts/bench-torch-train.py [--recipe gpt2 --recipe qwen3-small] [--batch-size 8]
        [--seq-len 256] [--steps 10] [--threads 2] [--compile] [--json]
Compare with: toolkit bench train --recipe NAME --batch-size 8 --seq-len 256 --steps 10
Needs torch, transformers, pyyaml. Run under `flock /tmp/toolkit-cpu.lock` on the shared machine.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_recipe(name):
    path = name if name.endswith(".yaml") else os.path.join(ROOT, "Recipes", name + ".yaml")
    with open(path) as f:
        return yaml.safe_load(f)


def build(recipe, seq_len):
    """The HF model equivalent to the recipe's `model:` block, with context length seq_len."""
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen3Config, Qwen3ForCausalLM
    m = recipe["model"]
    att, mlp, norm, pos = m["attention"], m["mlp"], m["norm"], m["position"]
    kinds = (pos["kind"], norm["kind"], mlp["kind"], bool(att.get("qk_norm", False)))
    fam = {("learned", "layernorm", "gelu", False): "gpt2", ("rope", "rmsnorm", "swiglu", True): "qwen3"}.get(kinds)
    heads = att["heads"]
    head_dim = att.get("head_dim", m["hidden_size"] // heads)
    if fam == "gpt2":
        cfg = GPT2Config(vocab_size=m["vocab_size"], n_positions=seq_len, n_embd=m["hidden_size"],
                         n_layer=m["layers"], n_head=heads, n_inner=mlp.get("intermediate_size"),
                         activation_function="gelu_new" if mlp.get("approximation", "tanh") == "tanh" else "gelu",
                         layer_norm_epsilon=norm.get("eps", 1e-5), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         tie_word_embeddings=m.get("tie_word_embeddings", True), bos_token_id=None, eos_token_id=None)
        cls = GPT2LMHeadModel
    elif fam == "qwen3":
        cfg = Qwen3Config(vocab_size=m["vocab_size"], hidden_size=m["hidden_size"],
                          intermediate_size=mlp["intermediate_size"], num_hidden_layers=m["layers"],
                          num_attention_heads=heads, num_key_value_heads=att.get("kv_heads", heads), head_dim=head_dim,
                          max_position_embeddings=seq_len, rms_norm_eps=norm.get("eps", 1e-6),
                          attention_bias=att.get("bias", False),
                          rope_parameters={"rope_type": "default", "rope_theta": float(pos.get("theta", 10000.0))},
                          tie_word_embeddings=m.get("tie_word_embeddings", True), attention_dropout=0.0)
        cls = Qwen3ForCausalLM
    else:
        sys.exit(f"{recipe.get('name')}: components {kinds} have no PyTorch equivalent here (gpt2, qwen3)")
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return cls(cfg).float().train(), m["vocab_size"]


def optimizer(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        embedding = any(k in name for k in ("embed", "wte", "wpe"))
        (decay if p.dim() >= 2 and not embedding else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-4, betas=(0.9, 0.999), eps=1e-8)


def bench(name, args, compile_model):
    recipe = load_recipe(name)
    model, vocab = build(recipe, args.seq_len)
    opt = optimizer(model)
    params = [p for p in model.parameters() if p.requires_grad]
    forward = torch.compile(model) if compile_model else model
    b, t = args.batch_size, args.seq_len
    times, last = [], time.perf_counter()
    for step in range(1, args.steps + 3):
        g = torch.Generator().manual_seed(step)
        ids = torch.randint(0, vocab, (b, t), generator=g)
        targets = torch.randint(0, vocab, (b, t), generator=g)
        opt.zero_grad(set_to_none=True)
        logits = forward(ids).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        now = time.perf_counter()
        if step > 2:
            times.append(now - last)
        last = now
    med = statistics.median(times)
    return {"recipe": recipe.get("name", name), "mode": "compile" if compile_model else "eager", "batch_size": b,
            "seq_len": t, "steps": args.steps, "threads": torch.get_num_threads(), "tokens_per_s": b * t / med,
            "median_step_seconds": med, "best_step_seconds": min(times), "best_tokens_per_s": b * t / min(times),
            "torch": torch.__version__, "final_loss": loss.item()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", action="append", help="recipe name or path (repeatable; default gpt2 and qwen3-small)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps after 2 warm-up steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (skipped if inductor fails)")
    ap.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.recipe or ["gpt2", "qwen3-small"]:
        for compile_model in ([False, True] if args.compile else [False]):
            try:
                r = bench(name, args, compile_model)
            except Exception as e:  # torch.compile needs a working C++ toolchain for inductor
                if not compile_model:
                    raise
                msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                print(json.dumps({"recipe": name, "mode": "compile", "skipped": msg}) if args.json
                      else f"{name} torch.compile: skipped ({msg})")
                continue
            print(json.dumps(r, sort_keys=True) if args.json else
                  f"{r['recipe']} {r['mode']:7s} B={r['batch_size']} T={r['seq_len']} threads={r['threads']}: "
                  f"{r['tokens_per_s']:.0f} tok/s (median step {r['median_step_seconds'] * 1e3:.1f} ms over {r['steps']}; "
                  f"best {r['best_tokens_per_s']:.0f} tok/s), "
                  f"torch {r['torch']}")


if __name__ == "__main__":
    main()

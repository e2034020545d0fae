#!/usr/bin/env python3
"""Checks a `toolkit export` folder with transformers: AutoTokenizer loads tokenizer.json +
tokenizer_config.json and encodes TEXT to the ids `toolkit encode` prints, and AutoModelForCausalLM
loads the weights with the end-of-text id of generation_config.json.

    python scripts/check-hf-export.py HF_DIR "some text" [--toolkit .build/release/toolkit]

Exits non-zero on a difference. Needs transformers and torch (not needed at run time by the toolkit).
"""
import argparse
import json
import subprocess
import sys

from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("text")
    ap.add_argument("--toolkit", default=".build/release/toolkit")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.folder)
    hf_ids = tok(a.text)["input_ids"]
    out = subprocess.run([a.toolkit, "encode", "--tokenizer", f"{a.folder}/tokenizer.json", "--text", a.text, "--json"],
                         check=True, capture_output=True, text=True).stdout
    toolkit_ids = json.loads(out.strip().splitlines()[-1])["ids"]
    model = AutoModelForCausalLM.from_pretrained(a.folder)
    print(json.dumps({"tokenizer": type(tok).__name__, "hf_ids": hf_ids, "toolkit_ids": toolkit_ids,
                      "eos_token": tok.eos_token, "model": type(model).__name__,
                      "generation_eos_token_id": model.generation_config.eos_token_id}))
    if hf_ids != toolkit_ids:
        sys.exit("the ids differ")


if __name__ == "__main__":
    main()

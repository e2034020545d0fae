"""Generates Fixtures/pretokenizer-parity.json: fuzzed strings (not the fixture's cases) with
HF tokenizers' pre-token splits (Split(regex, Isolated), Oniguruma) for the GPT-2, GPT-4 and
Qwen patterns, and tiktoken's GPT-2 and Qwen ids (real rank files from shared/tokenizers).
Needs `pip install tokenizers tiktoken`; not run in CI.

Usage: python3 pretokenizer_parity.py ../../../../shared/tokenizers > ../Fixtures/pretokenizer-parity.json
"""
import base64
import json
import random
import sys

import unicodedata

import tiktoken
import tokenizers
from tokenizers import Regex, pre_tokenizers

PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    "qwen": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}
ATOMS = ["a", "Z", "é", "e\u0301", "'", "s", "S", "ſ", "t", "re", "VE", "ll", "m", "D", " ", "  ", "\t", "\n", "\r",
         "\r\n", "\n\n", "1", "23", "4567", "٣", "½", "Ⅻ", "!", "?", "...", "中", "文", "ß", "\u00a0", "\u200b",
         "\u3000", "😀", "👨\u200d👩\u200d👧", "🇺🇸", "\u0085", "\u2028", "\u000b", "\u000c", "_", "-", "$", "ǅ", "ʰ",
         "ア", "한", "Ω", "ж", "x", "'s", "'ll", "''", " '", "\u001f", "\u007f", "𝔸", "#", "(", "{", "the", " the",
         "Hello", "world", "don't", "I'M", "3.14", "1,000,000", "<|endoftext|>", "<|im_start|>", "Ünïcödé"]


POOLS = [range(0x20, 0x7F), range(0xA0, 0x250), range(0x300, 0x370), range(0x370, 0x530), range(0x600, 0x700),
         range(0x900, 0x980), range(0x1100, 0x1200), range(0x2000, 0x2070), range(0x3000, 0x3100),
         range(0x4E00, 0x4F00), range(0xAC00, 0xAC80), range(0x1F300, 0x1F650), range(0x10000, 0x10100),
         range(0x1D400, 0x1D500), [0x9, 0xA, 0xD, 0xB, 0xC, 0x85, 0x2028, 0x200B, 0xFEFF]]


def random_unicode(rng, runs):
    out = []
    for _ in range(runs):
        pool = rng.choice(POOLS)
        out.append("".join(chr(rng.choice(pool)) for _ in range(rng.choice([1, 1, 2, 3, 5, 8]))))
        out.append(rng.choice([" ", " ", "", "\n", "  ", "'s ", "'LL", "\r\n", "\t"]))
    return "".join(out)


def ranks(path):
    out = {}
    for line in open(path):
        t, r = line.split()
        out[base64.b64decode(t)] = int(r)
    return out


def main():
    root = sys.argv[1]
    gpt2 = tiktoken.Encoding("gpt2", pat_str=PATTERNS["gpt2"], mergeable_ranks=ranks(f"{root}/gpt2/gpt2.tiktoken"),
                             special_tokens={"<|endoftext|>": 50256})
    qwen_ranks = ranks(f"{root}/qwen/qwen.tiktoken")
    qwen = tiktoken.Encoding("qwen", pat_str=PATTERNS["qwen"], mergeable_ranks=qwen_ranks,
                             special_tokens={"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645})
    splitters = {k: pre_tokenizers.Split(Regex(p), behavior="isolated", invert=False) for k, p in PATTERNS.items()}
    rng = random.Random(2026)
    cases = []
    for _ in range(400):
        s = "".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 24)))
        cases.append({
            "text": s,
            "splits": {k: [t for t, _ in sp.pre_tokenize_str(s)] for k, sp in splitters.items()},
            "gpt2_ids": gpt2.encode(s, allowed_special="all"),
            "qwen_ids": qwen.encode(s, allowed_special="all"),
        })
    text = random_unicode(rng, 1500)
    random_text = {"text": text, "gpt2_ids": gpt2.encode_ordinary(text), "qwen_ids": qwen.encode_ordinary(text),
                   "qwen_ids_after_nfc": qwen.encode_ordinary(unicodedata.normalize("NFC", text))}
    print(json.dumps({"generated_by": "Tests/TokenizationTests/FixtureGenerators/pretokenizer_parity.py",
                      "versions": {"tokenizers": tokenizers.__version__, "tiktoken": tiktoken.__version__},
                      "patterns": PATTERNS, "cases": cases,
                      "random_unicode": random_text}, ensure_ascii=False, indent=0))


main()

"""Generates Fixtures/trainer-parity.json: HF tokenizers' BpeTrainer merges on a small synthetic
text (deterministic), for each pre-tokenizer (GPT-2 ByteLevel regex; GPT-4 and Qwen via
Split(regex, Isolated) + ByteLevel(use_regex=False)). Needs `pip install tokenizers`; not run in CI.

Usage: python3 trainer_parity.py > ../Fixtures/trainer-parity.json
"""
import json
import random

import tokenizers
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

PATTERNS = {
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    "qwen": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}


def text(seed):
    rng = random.Random(seed)
    syll = ["ab", "abc", "bc", "c", "a", "ca", "é", "ß", "中", "文", "ing", "the", "th", "e", "'s", "'LL", "12", "345",
            "😀", "x", "xy", "yx", "y"]
    seps = [" ", " ", " ", "  ", "\n", "\n\n", ", ", ". ", "!\n", " \n", "\t", "\r\n", "  \n "]
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    out = []
    for _ in range(9000):
        out.append(words[min(int(rng.paretovariate(0.6)) - 1, len(words) - 1)])
        out.append(rng.choice(seps))
    return "".join(out)


def train(corpus, pre, vocab_size):
    tok = Tokenizer(models.BPE())
    if pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PATTERNS[pre]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([corpus], trainer)
    model = json.loads(tok.to_str())["model"]
    return {"vocab_size": len(model["vocab"]), "merges": [" ".join(m) for m in model["merges"]]}


corpus = text(1)
print(json.dumps({
    "generated_by": "Tests/TokenizationTests/FixtureGenerators/trainer_parity.py",
    "tokenizers_version": tokenizers.__version__,
    "settings": {"vocab_size": 700, "min_frequency": 2, "special_tokens": ["<|endoftext|>", "<pad>"]},
    "text": corpus,
    "results": {pre: train(corpus, pre, 700) for pre in ["gpt2", "gpt4", "qwen"]},
}, ensure_ascii=False, indent=1))

#!/usr/bin/env python3
"""Checks that the official `openai` Python client (pip install openai) works against `toolkit serve`:
lists the model, asks for a completion and a chat completion, whole and streamed, and checks that a
greedy answer equals `toolkit generate --greedy` on the same prompt, that the stream's pieces add up
to the whole answer, and that a bad request raises the client's BadRequestError.

    python scripts/check-openai-client.py --checkpoint DIR [--toolkit .build/release/toolkit]
    python scripts/check-openai-client.py --base-url http://127.0.0.1:8000/v1   # a server already running

With --checkpoint (or --model for an HF folder) the script starts `toolkit serve --port 0` itself and
stops it with SIGTERM at the end. Exits non-zero on any difference. Not needed at run time.
"""
import argparse
import json
import re
import signal
import subprocess
import sys

import openai


def start_server(toolkit, flag, folder):
    p = subprocess.Popen([toolkit, "serve", flag, folder, "--port", "0", "--name", "toy"],
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        sys.stderr.write(line)
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, f"http://127.0.0.1:{m.group(1)}/v1"
    raise SystemExit("toolkit serve did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--model")
    ap.add_argument("--base-url")
    ap.add_argument("--toolkit", default=".build/release/toolkit")
    ap.add_argument("--prompt", default="And God said")
    a = ap.parse_args()
    server = None
    if a.base_url:
        base = a.base_url
    else:
        flag, folder = ("--checkpoint", a.checkpoint) if a.checkpoint else ("--model", a.model)
        if not folder:
            raise SystemExit("give --checkpoint DIR, --model DIR or --base-url URL")
        server, base = start_server(a.toolkit, flag, folder)
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    try:
        client = openai.OpenAI(base_url=base, api_key="unused")
        models = client.models.list()
        name = models.data[0].id
        check(len(models.data) == 1, f"models.list: {name}")

        c = client.completions.create(model=name, prompt=a.prompt, max_tokens=16, temperature=0)
        text = c.choices[0].text
        check(c.usage.completion_tokens >= 1 and c.choices[0].finish_reason in ("stop", "length"),
              f"completions.create: {text!r} ({c.usage.completion_tokens} tokens, {c.choices[0].finish_reason})")
        if not a.base_url:
            flag, folder = ("--checkpoint", a.checkpoint) if a.checkpoint else ("--model", a.model)
            out = subprocess.run([a.toolkit, "generate", flag, folder, "--prompt", a.prompt, "--max-new-tokens", "16",
                                  "--greedy", "--json"], check=True, capture_output=True, text=True).stdout
            expected = json.loads(out.strip().splitlines()[-1])["text"]
            check(text == expected, f"the greedy completion equals toolkit generate --greedy ({expected!r})")

        pieces = [ch.choices[0].text for ch in
                  client.completions.create(model=name, prompt=a.prompt, max_tokens=16, temperature=0, stream=True)
                  if ch.choices]
        check("".join(pieces) == text, f"streamed completion: {len(pieces)} chunks add up to the whole answer")

        messages = [{"role": "user", "content": "Who made the heaven and the earth?"}]
        chat = client.chat.completions.create(model=name, messages=messages, max_tokens=24, temperature=0)
        answer = chat.choices[0].message.content
        check(chat.choices[0].message.role == "assistant", f"chat.completions.create: {answer!r}")
        deltas = [ch.choices[0].delta.content or "" for ch in
                  client.chat.completions.create(model=name, messages=messages, max_tokens=24, temperature=0, stream=True,
                                                 stream_options={"include_usage": True})
                  if ch.choices]
        check("".join(deltas) == answer, "streamed chat completion adds up to the whole answer")

        try:
            client.completions.create(model=name, prompt=a.prompt, max_tokens=-1)
            check(False, "max_tokens=-1 is refused")
        except openai.BadRequestError as e:
            check(e.status_code == 400, f"max_tokens=-1 raises BadRequestError: {e.body.get('message') if isinstance(e.body, dict) else e}")
        try:
            client.completions.create(model="no-such-model", prompt=a.prompt, max_tokens=1)
            check(False, "an unknown model is refused")
        except openai.NotFoundError as e:
            check(e.status_code == 404, "an unknown model raises NotFoundError")
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=60)
            check(code == 0, f"toolkit serve exits 0 on SIGTERM (exit {code})")
    if failures:
        raise SystemExit(f"{len(failures)} check(s) failed")
    print("the openai client works against toolkit serve")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Drives `toolkit serve`'s chat page in headless Chromium (Debian's `chromium`) as a person would:
loads http://HOST:PORT/, types a message into the box, presses Enter, waits until the streamed
answer is complete, checks that it is not empty, and saves a PNG screenshot.

    python3 scripts/serve-screenshot.py --checkpoint DIR [--out serve-page.png] [--toolkit .build/release/toolkit]
    python3 scripts/serve-screenshot.py --url http://127.0.0.1:8000/        # a server already running

Only the standard library: Chromium is controlled through the DevTools protocol over a pipe
(--remote-debugging-pipe), so no driver or Python package is needed. Exits non-zero when the page
shows no answer or an error.
"""
import argparse
import base64
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time


class Browser:
    """Chromium with the DevTools protocol on file descriptors 3 (commands) and 4 (replies)."""

    def __init__(self, binary):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="toolkit-chromium-")
        args = [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", f"--user-data-dir={self.profile}", "--window-size=1000,700", "about:blank"]
        # The pipe ends become fds 3 and 4 in the browser (os.pipe's fds are close-on-exec; dup2 clears that).
        devnull = os.open(os.devnull, os.O_RDWR)
        self.pid = os.posix_spawn(binary, args, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, to_browser_r, 3), (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
            (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
        for fd in (to_browser_r, from_browser_w, devnull):
            os.close(fd)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                if not select.select([self.from_browser], [], [], 60)[0]:
                    raise SystemExit(f"{method}: no answer from chromium in 60 s")
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise SystemExit("chromium closed the DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise SystemExit(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && !!document.getElementById('input')", 30)

    def eval(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return r.get("result", {}).get("value")

    def wait_for(self, expression, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.eval(expression):
                return True
            time.sleep(0.1)
        raise SystemExit(f"timed out waiting for: {expression}")

    def type(self, text):
        self.eval("document.getElementById('input').focus()")
        self.send("Input.insertText", {"text": text})
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                 "windowsVirtualKeyCode": 13, "text": "\r" if kind == "keyDown" else ""})

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except SystemExit:
            pass
        for _ in range(100):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--model")
    ap.add_argument("--url")
    ap.add_argument("--toolkit", default=".build/release/toolkit")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    ap.add_argument("--message", default="Who made the heaven and the earth?")
    ap.add_argument("--out", default="serve-page.png")
    a = ap.parse_args()
    server = None
    url = a.url
    if not url:
        flag, folder = ("--checkpoint", a.checkpoint) if a.checkpoint else ("--model", a.model)
        if not folder:
            raise SystemExit("give --checkpoint DIR, --model DIR or --url URL")
        server = subprocess.Popen([a.toolkit, "serve", flag, folder, "--port", "0"], stderr=subprocess.PIPE, text=True)
        for line in server.stderr:
            sys.stderr.write(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1) + "/"
                break
        if not url:
            raise SystemExit("toolkit serve did not start")
    browser = None
    try:
        browser = Browser(a.chromium)
        browser.open(url)
        browser.type(a.message)
        browser.wait_for("[...document.querySelectorAll('.assistant')].some(e => e.dataset.state === 'done')", 120)
        answer = browser.eval("document.querySelector('.assistant').textContent")
        error = browser.eval("(document.querySelector('.error') || {}).textContent || ''")
        user = browser.eval("document.querySelector('.user').textContent")
        browser.screenshot(a.out)
        print(json.dumps({"url": url, "message": user, "answer": answer, "error": error, "screenshot": a.out}))
        if user != a.message or not answer or error:
            raise SystemExit("the page did not show the message and a streamed answer")
    finally:
        if browser:
            browser.close()
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()

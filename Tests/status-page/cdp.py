#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe:
JSON messages ending in NUL on descriptors 3 and 4, no WebSocket, stdlib only)
for the status page test (Tests/CorralServerTests/StatusPageTests.swift).

    cdp.py CHROMIUM URL DIRECTORY

1. Opens URL, waits for the first render and for the event stream to be open,
   takes DIRECTORY/before.png and prints one line: `loaded {DOM JSON}`.
2. Waits (up to 20 s) until the page shows at least one agent row more, which
   the test causes by starting agents after it read `loaded`; then waits until
   the page reports the usage the test gave them, takes DIRECTORY/after.png and
   prints `updated {DOM JSON}`.
The DOM JSON lists every agent row (id, state, where it came from, and the
memory cell's used/soft/hard and bar width), the number of renders, stream
events, and whether the page was reloaded (a marker set on window at load).
Exit status 1 with a message on any failure.
"""
import base64
import json
import os
import subprocess
import sys
import time

READ_DOM = r"""
JSON.stringify({
  marker: window.__corralMarker === undefined ? null : window.__corralMarker,
  live: document.getElementById("live").textContent,
  renders: Number(document.body.dataset.renders || 0),
  streamEvents: Number(document.body.dataset.streamEvents || 0),
  streamItems: document.querySelectorAll("#stream li").length,
  capacityRows: document.querySelectorAll("#capacity tr.resource").length,
  rows: [...document.querySelectorAll("#agents tr.agent")].map(row => {
    const memory = row.querySelector("td.usage.memory");
    const used = memory.querySelector(".used");
    return {
      id: row.dataset.agent, group: row.dataset.group, state: row.dataset.state, arrived: row.dataset.arrived,
      memory: { used: memory.dataset.used, soft: memory.dataset.soft, hard: memory.dataset.hard,
                width: used ? used.getBoundingClientRect().width : 0 },
    };
  }),
})
"""


class Browser:
    def __init__(self, chromium, profile):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        # High numbers first, so that dup2 onto 3 and 4 cannot clobber one of them.
        child_in = os.dup2(to_child_r, 100, inheritable=True)
        child_out = os.dup2(from_child_w, 101, inheritable=True)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
             "--window-size=1200,900", "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise RuntimeError(f"{method}: no answer in 30 s")

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wait_for(browser, what, predicate, timeout):
    deadline = time.monotonic() + timeout
    dom = None
    while time.monotonic() < deadline:
        # None while the page is still navigating (the script finds no #live yet).
        value = browser.evaluate(READ_DOM)
        dom = json.loads(value) if value else None
        if dom and predicate(dom):
            return dom
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout} s; the page shows {json.dumps(dom)}")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    chromium, url, directory = sys.argv[1:]
    browser = Browser(chromium, os.path.join(directory, "profile"))
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        browser.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        browser.send("Page.enable")
        browser.send("Page.navigate", {"url": url})
        wait_for(browser, "no first render", lambda d: d["renders"] >= 1 and d["live"] == "live", 20)
        browser.evaluate("window.__corralMarker = 'no reload'")
        dom = wait_for(browser, "no marker", lambda d: d["marker"] == "no reload", 5)
        browser.screenshot(os.path.join(directory, "before.png"))
        print("loaded " + json.dumps(dom), flush=True)
        count = len(dom["rows"])
        wait_for(browser, "no new agent row", lambda d: len(d["rows"]) > count, 20)
        # Until every row shows memory in use (the test reports it after the start).
        dom = wait_for(browser, "no usage on the new rows",
                       lambda d: d["rows"] and all(r["memory"]["used"] not in ("", None) for r in d["rows"]), 20)
        time.sleep(0.3)  # the bars' layout
        dom = wait_for(browser, "the page went away", lambda d: True, 5)
        browser.screenshot(os.path.join(directory, "after.png"))
        print("updated " + json.dumps(dom), flush=True)
    except Exception as error:
        print(f"cdp.py: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        browser.close()


if __name__ == "__main__":
    main()

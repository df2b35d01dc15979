"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for pages that
need JavaScript and clicks (no tests here).

    with Browser(tmp_path / "profile") as browser:
        browser.open("http://127.0.0.1:16686/trace/abc")
        browser.wait_for("document.body.innerText.includes('GET /work')", timeout_s=30)
        png = browser.screenshot()

The browser listens on a port it picks itself (``--remote-debugging-port=0``, read back from
``DevToolsActivePort`` in the profile); the client is ``websockets``' synchronous one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Optional

import httpx
from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, profile: Path, width: int = 1280, height: int = 800) -> None:
        if CHROMIUM is None:
            raise FileNotFoundError("the chromium binary is missing (apt-get install chromium)")
        profile.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._next_id = 0
        self._ws: Any = None
        self._exit = contextlib.ExitStack()
        try:
            port = self._devtools_port(profile / "DevToolsActivePort")
            pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(p for p in pages if p.get("type") == "page")
            self._ws = self._exit.enter_context(
                connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, proxy=None))
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, path: Path, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}")
            try:
                return int(path.read_text().split()[0])
            except (OSError, IndexError, ValueError):
                time.sleep(0.1)
        raise TimeoutError(f"chromium wrote no {path.name} within {timeout_s}s")

    def call(self, method: str, **params: Any) -> Dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout_s: float, what: Optional[str] = None) -> Any:
        """Evaluate ``expression`` until it is truthy (errors count as not yet: the page may
        still be loading); return its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:
                value, error = None, exc
            else:
                error = None
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what or expression} "
                                     f"({error}); page:\n{text}")
            time.sleep(0.2)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        self._ws = None
        self._exit.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

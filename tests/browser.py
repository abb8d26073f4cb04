"""A headless Chromium driven through ChromeDriver's W3C WebDriver protocol (JSON over HTTP, so the standard library
is enough): open a page, run a script in it, click an element, press a key, read the console, take a screenshot.

Debian's packages `chromium` and `chromium-driver` provide the two binaries (.ci/run installs them). The flags keep
Chromium off the network, which the machines running the tests do not reach.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars"]


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, width: int = 1400, height: int = 900):
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        options = {"binary": CHROMIUM, "args": FLAGS + [f"--user-data-dir={self.profile}",
                                                        f"--window-size={width},{height}"]}
        capabilities = {"browserName": "chrome", "goog:chromeOptions": options,
                        "goog:loggingPrefs": {"browser": "ALL"}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"WebDriver {method} {path}: {error.read().decode()[:500]}") from None

    def _session(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    def run(self, script: str, *args):
        """The value of a function body run in the page (`arguments[i]` are args; elements come back as refs)."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def run_async(self, script: str, *args):
        """Like run; the script calls `arguments[arguments.length - 1](value)` when done."""
        return self._session("POST", "/execute/async", {"script": script, "args": list(args)})

    def wait_for(self, condition: str, timeout: float = 20.0):
        """Poll the expression `condition` in the page until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(f"return ({condition});")
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{condition} stayed false for {timeout} s")
            time.sleep(0.05)

    def find(self, css: str) -> dict:
        return self._session("POST", "/element", {"using": "css selector", "value": css})

    def click(self, element: dict) -> None:
        """A real click (WebDriver scrolls the element into view and clicks its centre)."""
        self._session("POST", f"/element/{element[ELEMENT]}/click", {})

    def press(self, key: str) -> None:
        self._session("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]})

    def console(self) -> list[dict]:
        """The console entries since the last call ({level, message}): errors are level SEVERE."""
        return self._session("POST", "/se/log", {"type": "browser"})

    def allow_downloads(self, folder: Path) -> None:
        """Save the page's downloads into `folder` (headless Chromium refuses them otherwise): DevTools'
        Browser.setDownloadBehavior, through ChromeDriver's command endpoint."""
        self._session("POST", "/goog/cdp/execute", {"cmd": "Browser.setDownloadBehavior", "params": {
            "behavior": "allow", "downloadPath": str(folder)}})

    def resize(self, width: int, height: int) -> None:
        self._session("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._session("GET", "/screenshot")))
        return path

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)
            shutil.rmtree(self.profile, ignore_errors=True)

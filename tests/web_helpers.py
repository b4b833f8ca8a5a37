"""Headless Chromium driven over the DevTools protocol (aiohttp websocket), and an ``rtsam web`` process."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
APP_ERROR = "window.trame && window.trame.state && window.trame.state.get('error')"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout_s} s")


def start_web(args: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """``rtsam web`` on a free loopback port with headless EGL rendering; (process, url)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
    env.pop("DISPLAY", None)
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "rtsam", "web", "--port", str(port), *args], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    wait_http(url, process)
    return process, url


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Chromium:
    """One headless Chromium with a fresh profile and a DevTools port."""

    def __init__(self, executable: str):
        self.profile = tempfile.mkdtemp(prefix="rtsam-chromium-")
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--window-size=1400,900", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = self._devtools_port()

    def _devtools_port(self) -> int:
        for line in self.process.stderr:
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                return int(found.group(1))
        raise RuntimeError("chromium exited without a DevTools port")

    def page_ws_url(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list") as answer:
            pages = [t for t in json.load(answer) if t["type"] == "page"]
        return pages[0]["webSocketDebuggerUrl"]

    def close(self) -> None:
        stop(self.process)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """A DevTools session on one page: navigate, evaluate, wait for a condition, click, screenshot."""

    def __init__(self, ws):
        self.ws, self._id, self.events = ws, 0, []

    async def call(self, method: str, **params) -> dict:
        self._id += 1
        await self.ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive()).data)
            if "method" in message:
                self.events.append(message)
            elif message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 60.0, what: str = "", fail: str = APP_ERROR):
        """Poll a JS expression until it is truthy (its value); RuntimeError as soon as ``fail`` is truthy."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            error = await self.evaluate(fail)
            if error:
                raise RuntimeError(f"while waiting for {what or expression}: {error}")
            await asyncio.sleep(0.2)
        raise TimeoutError(f"waited {timeout_s} s for {what or expression}")

    async def goto(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Runtime.enable")
        await self.call("Page.navigate", url=url)
        await self.wait_for("window.trame && window.trame.state && window.trame.state.get('status') !== undefined",
                            what="the trame app")

    async def state(self, key: str):
        return await self.evaluate(f"JSON.parse(JSON.stringify(window.trame.state.get({json.dumps(key)}) ?? null))")

    async def set_state(self, **values) -> None:
        """Set state keys and wait until the server has them (a busy client defers its push)."""
        await self.evaluate(f"window.trame.state.update({json.dumps(values)})")
        await self.wait_state_pushed()

    async def trigger(self, name: str, *args):
        return await self.evaluate(f"window.trame.trigger({json.dumps(name)}, {json.dumps(list(args))})")

    async def click_element(self, selector: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})", what=selector)
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        await self.wait_state_pushed()

    async def wait_state_pushed(self) -> None:
        """Until the client has sent its state changes to the server (a busy client defers them)."""
        await self.wait_for("window.trame.state.dirtyKeys.size === 0", 30, "the state to reach the server")

    async def rect(self, selector: str) -> dict:
        return await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")

    async def mouse_click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path) -> Path:
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        path.write_bytes(base64.b64decode(data))
        return path


async def open_page(chromium: Chromium, url: str, scenario):
    """Run ``scenario(page)`` on a page showing ``url`` (None: the scenario navigates)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(chromium.page_ws_url(), max_msg_size=0) as ws:
            page = Page(ws)
            if url is not None:
                await page.goto(url)
            return await scenario(page)

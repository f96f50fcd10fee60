"""A small driver for headless Chromium over the Chrome DevTools protocol, for the
page tests: launch, navigate, type, press keys, read the page, take screenshots.

The DevTools protocol speaks JSON over a WebSocket; the client here (RFC 6455, text
frames, client masking) is just big enough for that, so the tests need no browser
automation package. The pages under test run no script; the driver's
``Runtime.evaluate`` calls are the test reading the page, not the page itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

TIMEOUT_S = 30.0
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--window-size=1280,900")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


async def run_chromium(binary: str, profile: Path,
                       *args: str) -> subprocess.CompletedProcess[bytes]:
    """One-shot command-line use (``--dump-dom``, ``--screenshot``, ``--print-to-pdf``).
    Asynchronous, because the server under test runs on this same event loop."""
    argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


class WebSocket:
    """Client side of RFC 6455 over asyncio streams: text messages only."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, url: str) -> WebSocket:
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        reader, writer = await asyncio.open_connection(host, int(port or 80),
                                                       limit=64 * 1024 * 1024)
        key = base64.b64encode(secrets.token_bytes(16))
        writer.write(b"GET /" + path.encode() + b" HTTP/1.1\r\nHost: " + hostport.encode()
                     + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"WebSocket upgrade refused: {status!r}")
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        if accept not in head:
            raise ConnectionError("WebSocket upgrade without the right Sec-WebSocket-Accept")
        return cls(reader, writer)

    async def send(self, text: str) -> None:
        payload = text.encode("utf-8")
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = secrets.token_bytes(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._writer.write(header + mask + masked)
        await self._writer.drain()

    async def _frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = await self._reader.readexactly(2)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self._reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
        mask = await self._reader.readexactly(4) if b2 & 0x80 else b""
        data = await self._reader.readexactly(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return bool(b1 & 0x80), b1 & 0x0F, data

    async def receive(self) -> str:
        parts: list[bytes] = []
        while True:
            fin, opcode, data = await self._frame()
            if opcode == 0x8:
                raise ConnectionError("WebSocket closed by the browser")
            if opcode == 0x9:  # ping: answer with a masked pong
                mask = secrets.token_bytes(4)
                self._writer.write(struct.pack("!BB", 0x8A, 0x80 | len(data)) + mask
                                   + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
                continue
            if opcode in (0x1, 0x2, 0x0):
                parts.append(data)
                if fin:
                    return b"".join(parts).decode("utf-8")

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()


class Page:
    """One browser tab driven over the DevTools protocol."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                msg = json.loads(await self._ws.receive())
                if "id" in msg and msg["id"] in self._pending:
                    self._pending.pop(msg["id"]).set_result(msg)
                elif "method" in msg:
                    await self._events.put(msg)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(str(exc)))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = fut
        await self._ws.send(json.dumps({"id": self._next, "method": method,
                                        "params": params}))
        reply = await asyncio.wait_for(fut, TIMEOUT_S)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def wait_event(self, method: str) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                event = await self._events.get()
                if event["method"] == method:
                    return event
        return await asyncio.wait_for(find(), TIMEOUT_S)

    def _drain(self) -> None:
        while not self._events.empty():
            self._events.get_nowait()

    async def navigate(self, url: str) -> None:
        self._drain()
        await self.send("Page.navigate", url=url)
        await self.wait_event("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True)
        return result["result"].get("value")

    async def type_into(self, selector: str, text: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.send("Input.insertText", text=text)

    async def press_enter_and_wait(self) -> None:
        """Enter in a form field submits the form (implicit submission): a real key."""
        self._drain()
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                            windowsVirtualKeyCode=13, nativeVirtualKeyCode=13,
                            **({"text": "\r"} if kind == "keyDown" else {}))
        await self.wait_event("Page.loadEventFired")

    async def click_and_wait(self, selector: str) -> None:
        """Click the element's centre with the mouse and wait for the next page.

        The point is measured after the next frames are laid out, and only once the
        element really is what lies there: a viewport change just before (device
        metrics emulation switched off, say) is applied asynchronously, and a click at
        a point measured in the old layout hits something else and never navigates."""
        box: list[float] | None = None
        for _ in range(50):
            reply = await self.send(
                "Runtime.evaluate", awaitPromise=True, returnByValue=True, expression=(
                    "new Promise(done => requestAnimationFrame(() =>"
                    " requestAnimationFrame(() => {"
                    f" const e = document.querySelector({json.dumps(selector)});"
                    " e.scrollIntoView({block: 'center'});"
                    " const r = e.getBoundingClientRect();"
                    " const x = r.x + r.width / 2, y = r.y + r.height / 2;"
                    " const hit = document.elementFromPoint(x, y);"
                    " done(hit !== null && e.contains(hit) ? [x, y] : null); })))"))
            box = reply["result"].get("value")
            if box is not None:
                break
            await asyncio.sleep(0.1)
        assert box is not None, f"{selector} never came under the pointer"
        self._drain()
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                            button="left", clickCount=1)
        await self.wait_event("Page.loadEventFired")

    async def text(self) -> str:
        return str(await self.evaluate("document.body.innerText"))

    async def path(self) -> str:
        return str(await self.evaluate("location.pathname + location.search"))

    async def screenshot(self, out: Path, *, full_page: bool = True,
                         width: int = 1280) -> Path:
        mobile = width < 600
        if mobile:  # lay the page out at the narrow width before measuring it
            await self.send("Emulation.setDeviceMetricsOverride", width=width, height=800,
                            deviceScaleFactor=1, mobile=True)
        height = 900
        if full_page:
            height = int(await self.evaluate(
                "Math.ceil(document.documentElement.scrollHeight)"))
        await self.send("Emulation.setDeviceMetricsOverride", width=width,
                        height=max(800, min(height, 8000)), deviceScaleFactor=1,
                        mobile=mobile)
        try:
            shot = await self.send("Page.captureScreenshot", format="png")
        finally:
            await self.send("Emulation.clearDeviceMetricsOverride")
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        await self._ws.close()


@contextlib.asynccontextmanager
async def browser_page(binary: str, profile: Path) -> AsyncIterator[Page]:
    """Start headless Chromium with a DevTools port and yield its first tab."""
    profile.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
        "about:blank", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    page: Page | None = None
    try:
        marker = profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT_S
        while not (marker.exists() and marker.read_text().count("\n") >= 1):
            if proc.returncode is not None or loop.time() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(marker.read_text().split("\n")[0])
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        page = Page(await WebSocket.connect(url))
        await page.send("Page.enable")
        await page.send("Network.enable")
        yield page
    finally:
        if page is not None:
            await page.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: ``LETTERLOCK_SCREENSHOTS`` if set (to keep them), else a
    temporary directory of the test."""
    chosen = Path(os.environ.get("LETTERLOCK_SCREENSHOTS", default))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen

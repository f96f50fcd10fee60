"""rspamd, the spam filter, through its HTTP protocol: ``/checkv2`` on the normal
worker scores a message, ``/learnspam`` and ``/learnham`` on the controller teach its
statistics, ``/ping`` tells whether it is there.

HTTP/1.1 is spoken with h11 (a protocol state machine, already installed with
uvicorn) over asyncio streams: one connection per request, ``Connection: close``,
every request bounded by ``spam.timeout_s``. rspamd is plain HTTP on loopback or a
private network; nothing here speaks TLS.

:class:`SpamFilter` is what the MX path uses: it never raises and never holds mail
back when rspamd does not answer. It says so once (``spam:filter:unavailable``), and
once again when rspamd is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

import h11

from letterlock.config import SpamConfig
from letterlock.errors import ConfigError
from letterlock.services.operations.log_events import LogEvent, event

MAX_REPLY_BYTES = 1024 * 1024
MAX_SYMBOLS = 40
"""Symbol names written into X-Spam-Status (the highest scores first)."""
_UNSAFE = re.compile(rb"[\x00-\x1f\x7f]")

JUNK_ACTIONS = frozenset({"add header", "rewrite subject"})
DEFER_ACTIONS = frozenset({"soft reject"})
"""rspamd's greylisting module defers by answering ``soft reject``; its ``greylist``
action is only the score band that module works on, and is delivered (deferring it
too would defer such mail for ever where the module is off)."""
REJECT_ACTIONS = frozenset({"reject"})


class RspamdUnavailable(Exception):
    """No usable answer: refused, timed out, or not rspamd's protocol."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str, option: str) -> Endpoint:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"{option} must be an http:// URL, got {url!r}")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ConfigError(f"{option}: bad port in {url!r}") from exc
        return cls(parts.hostname, port, parts.path.rstrip("/"))


@dataclass(frozen=True)
class SpamVerdict:
    action: str
    """rspamd's action: no action, greylist, add header, rewrite subject, soft reject
    or reject."""
    score: float
    required: float
    symbols: tuple[str, ...]
    """The symbols that fired, highest score first."""

    @property
    def is_spam(self) -> bool:
        return self.action in JUNK_ACTIONS or self.action in REJECT_ACTIONS

    def header(self) -> bytes:
        """``X-Spam-Status`` (SpamAssassin's spelling, which mail programs and Sieve
        scripts look for), folded below 78 columns."""
        action = re.sub(r"[^\x21-\x7e]", "_", self.action)[:32]
        lines = [f"X-Spam-Status: {'Yes' if self.is_spam else 'No'}, "
                 f"score={self.score:.2f} required={self.required:.2f}",
                 f"action={action}"]
        names = list(self.symbols[:MAX_SYMBOLS])
        current = "tests="
        for i, name in enumerate(names):
            piece = name + ("," if i < len(names) - 1 else "")
            if len(current) + len(piece) > 70:
                lines.append(current)
                current = ""
            current += piece
        if names:
            lines.append(current)
        return ("\r\n\t".join(lines) + "\r\n").encode("ascii", "replace")


def parse_verdict(body: bytes) -> SpamVerdict:
    try:
        data = json.loads(body)
        action = str(data["action"])
        score = float(data.get("score", 0.0))
        required = float(data.get("required_score", 0.0))
        symbols = data.get("symbols") or {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RspamdUnavailable(f"not an rspamd reply: {exc}") from None
    if not isinstance(symbols, dict):
        symbols = {}
    ranked = sorted(symbols.items(),
                    key=lambda kv: (-_score(kv[1]), str(kv[0])))
    names = tuple(re.sub(r"[^A-Za-z0-9_]", "_", str(k))[:64] for k, _ in ranked)
    return SpamVerdict(action.lower(), score, required, names)


def _score(symbol: object) -> float:
    if isinstance(symbol, dict):
        with contextlib.suppress(TypeError, ValueError):
            return float(symbol.get("score", 0.0))
    return 0.0


def _header_value(text: str) -> bytes:
    return _UNSAFE.sub(b"?", text.encode("utf-8", "replace"))[:998]


class RspamdClient:
    def __init__(self, url: str, controller_url: str = "", password: str = "",
                 timeout_s: float = 10.0) -> None:
        self._normal = Endpoint.parse(url, "spam.rspamd_url")
        self._controller = (Endpoint.parse(controller_url, "spam.rspamd_controller_url")
                            if controller_url.strip() else None)
        self._password = password
        self._timeout = timeout_s
        self.url = url

    @property
    def can_learn(self) -> bool:
        return self._controller is not None

    async def ping(self) -> None:
        """Raises RspamdUnavailable unless the normal worker answers ``/ping``."""
        status, _reason, body = await self._request(self._normal, "GET", "/ping", [], b"")
        if status != 200 or not body.startswith(b"pong"):
            raise RspamdUnavailable(f"/ping answered {status}")

    async def check(self, message: bytes, *, ip: str, helo: str, sender: str,
                    recipients: Sequence[str], queue_id: str = "",
                    hostname: str = "") -> SpamVerdict:
        """rspamd's verdict on ``message`` (as it will be delivered) and its
        envelope. Raises RspamdUnavailable."""
        headers: list[tuple[bytes, bytes]] = [(b"From", _header_value(sender))]
        headers += [(b"Rcpt", _header_value(r)) for r in recipients]
        if ip:
            headers.append((b"IP", _header_value(ip)))
        if helo:
            headers.append((b"Helo", _header_value(helo)))
        if queue_id:
            headers.append((b"Queue-Id", _header_value(queue_id)))
        if hostname:
            headers.append((b"MTA-Name", _header_value(hostname)))
        status, reason, body = await self._request(self._normal, "POST", "/checkv2",
                                                   headers, message)
        if status != 200:
            raise RspamdUnavailable(f"/checkv2 answered {status} {reason}")
        return parse_verdict(body)

    async def learn(self, message: bytes, *, spam: bool) -> tuple[int, str]:
        """Teach the controller ``message`` as spam or ham: (HTTP status, rspamd's
        reason). 200 means learned; rspamd answers 204 (or 208) when it declines,
        e.g. a message it learned already. Raises RspamdUnavailable."""
        if self._controller is None:
            raise RspamdUnavailable("no controller configured")
        headers = [(b"Password", _header_value(self._password))] if self._password else []
        status, reason, _ = await self._request(
            self._controller, "POST", "/learnspam" if spam else "/learnham", headers,
            message)
        return status, reason

    async def _request(self, where: Endpoint, method: str, path: str,
                       headers: list[tuple[bytes, bytes]], body: bytes,
                       ) -> tuple[int, str, bytes]:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(where, method, path, headers, body)
        except TimeoutError:
            raise RspamdUnavailable(f"no answer within {self._timeout:g} s") from None
        except OSError as exc:
            raise RspamdUnavailable(f"{where.host}:{where.port}: {exc.strerror or exc}"
                                    ) from None
        except h11.ProtocolError as exc:
            raise RspamdUnavailable(f"not HTTP: {exc}") from None

    async def _exchange(self, where: Endpoint, method: str, path: str,
                        headers: list[tuple[bytes, bytes]], body: bytes,
                        ) -> tuple[int, str, bytes]:
        reader, writer = await asyncio.open_connection(where.host, where.port)
        try:
            conn = h11.Connection(our_role=h11.CLIENT)
            request = h11.Request(method=method, target=where.prefix + path, headers=[
                (b"Host", f"{where.host}:{where.port}".encode("idna")),
                (b"Content-Length", str(len(body)).encode("ascii")),
                (b"Connection", b"close"), *headers])
            writer.write(conn.send(request) + (conn.send(h11.Data(data=body)) or b"")
                         + (conn.send(h11.EndOfMessage()) or b""))
            await writer.drain()
            status, reason, chunks, size = 0, "", [], 0
            while True:
                got = conn.next_event()
                if got is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    continue
                if isinstance(got, h11.Response):
                    status, reason = got.status_code, got.reason.decode("ascii", "replace")
                elif isinstance(got, h11.Data):
                    size += len(got.data)
                    if size > MAX_REPLY_BYTES:
                        raise RspamdUnavailable("reply too large")
                    chunks.append(bytes(got.data))
                elif isinstance(got, h11.EndOfMessage | h11.ConnectionClosed):
                    return status, reason, b"".join(chunks)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class SpamFilter:
    """rspamd for the MX path: a verdict, or None when rspamd does not answer (the
    message is then delivered unchecked)."""

    def __init__(self, client: RspamdClient) -> None:
        self.client = client
        self._down = False

    @classmethod
    def from_config(cls, config: SpamConfig) -> SpamFilter | None:
        """The filter ``spam.rspamd`` asks for, or None (``off``)."""
        mode = config.rspamd.strip().lower()
        if mode in ("off", ""):
            return None
        if mode != "on":
            raise ConfigError(f"spam.rspamd must be off or on, got {config.rspamd!r}")
        return cls(RspamdClient(config.rspamd_url, config.rspamd_controller_url,
                                config.rspamd_password, float(config.timeout_s)))

    async def probe(self) -> bool:
        """Whether rspamd answers now; one warning line if it does not (at start)."""
        try:
            await self.client.ping()
        except RspamdUnavailable as exc:
            self._went_down(str(exc))
            return False
        return True

    def _went_down(self, reason: str) -> None:
        if not self._down:
            self._down = True
            event(LogEvent.SPAM_FILTER_DOWN, url=self.client.url, reason=reason[:120])

    async def check(self, message: bytes, *, ip: str, helo: str, sender: str,
                    recipients: Sequence[str], queue_id: str = "",
                    hostname: str = "") -> SpamVerdict | None:
        try:
            verdict = await self.client.check(message, ip=ip, helo=helo, sender=sender,
                                              recipients=recipients, queue_id=queue_id,
                                              hostname=hostname)
        except RspamdUnavailable as exc:
            self._went_down(str(exc))
            return None
        if self._down:
            self._down = False
            event(LogEvent.SPAM_FILTER_UP, url=self.client.url)
        return verdict

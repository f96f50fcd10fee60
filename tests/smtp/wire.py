"""A raw SMTP client for protocol scripts: bytes out, parsed replies in."""

from __future__ import annotations

import asyncio


class Wire:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, *, greet: bool = True) -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        wire = cls(reader, writer)
        if greet:
            code, _ = await wire.reply()
            assert code == 220
        return wire

    async def reply(self, timeout: float = 10) -> tuple[int, str]:
        """One (possibly multi-line) reply: (code, text of the last line)."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError("server closed the connection")
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), lines[-1][4:]

    async def cmd(self, line: bytes | str) -> tuple[int, str]:
        self.send(line if isinstance(line, bytes) else line.encode() + b"\r\n")
        return await self.reply()

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def closed(self, timeout: float = 10) -> bool:
        """True once the server has closed the connection."""
        try:
            data = await asyncio.wait_for(self.reader.read(), timeout)
        except (ConnectionError, TimeoutError):
            return False
        return data == b"" or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()

"""Serving a sandbox's aiohttp application on a loopback port (shared by the sandbox servers)."""

from __future__ import annotations

import ssl

from aiohttp import web


class LoopbackSite:
    """One application on one port; `start` returns the port actually bound (0 picks a free one)."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None

    async def start(self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen; returns the bound port."""
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=ssl_context).start()
        return port or int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class LoopbackServer:
    """A sandbox server on a `LoopbackSite`: `start` (its own) listens and returns the base URL; `async with` too."""

    _site: LoopbackSite

    async def start(self) -> str:
        """Listen; returns the base URL (each server builds its own application)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop listening."""
        await self._site.stop()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

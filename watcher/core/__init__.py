"""The pure core: parsing, threads, castings, identity, rosters, tallies, receipts, decisions, durations.

Nothing here does I/O or imports an I/O library (asyncio, SQLAlchemy, httpx, aioimaplib, aiosmtplib,
structlog, APScheduler, Jinja2, aiohttp, pydantic) or a `watcher` module outside `watcher.core`;
tests/unit/test_core_purity.py checks it in a fresh interpreter.
"""

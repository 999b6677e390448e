"""The one wall clock, and the guard that it stays the only one (and the loopback rule and backoff too)."""

import datetime
import pathlib
import re

import watcher.services.wallclock as wallclock

WATCHER = pathlib.Path(wallclock.__file__).parent.parent


def test_utcnow_is_aware_utc_and_current() -> None:
    before = datetime.datetime.now(datetime.UTC)
    now = wallclock.utcnow()
    after = datetime.datetime.now(datetime.UTC)
    assert now.utcoffset() == datetime.timedelta(0)
    assert before <= now <= after


def _product_files_matching(pattern: str) -> list[str]:
    found = []
    for path in sorted(WATCHER.rglob("*.py")):
        if re.search(pattern, path.read_text(encoding="utf-8")):
            found.append(str(path.relative_to(WATCHER)))
    return found


def test_one_clock() -> None:
    assert _product_files_matching(r"datetime\.now\(|datetime\.utcnow\(|def _?utcnow\(") == ["services/wallclock.py"]


def test_one_loopback_rule() -> None:
    assert _product_files_matching(r"\.is_loopback\b(?!\()|def _?is_loopback\(") == ["core/loopback.py"]


def test_one_backoff() -> None:
    assert _product_files_matching(r"2\.0 ?\*\*|\* ?\(1 << ") == ["core/backoff.py"]

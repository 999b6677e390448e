"""A re-tally from stored readings equals a tally from parsing the thread: corpus threads and fuzzed ones."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import watcher.core.digest as digest
import watcher.core.message as message
import watcher.core.roster as roster
import watcher.core.tally as tally
import watcher.sources.archive as archive
import watcher.store.readings as readings
from tests.unit.test_message_fuzz import header_soup, mutated

FUZZ: Any = settings(max_examples=100, deadline=None)
PEOPLE = roster.Roster(
    committees={
        "maven": roster.Committee("maven", members=frozenset({"rfscholte", "hboutemy", "olamy", "michaelo"})),
        roster.IPMC_KEY: roster.Committee(roster.IPMC_KEY, members=frozenset({"olamy", "hboutemy"})),
    }
)


def stored(raws: list[bytes]) -> list[digest.Digest]:
    """Each message read once and kept as the store keeps it (JSON text), then read back."""
    found = [readings.decode(readings.encode(digest.parse(raw))) for raw in raws]
    assert all(read is not None for read in found)
    return [read for read in found if read is not None]


def assert_same(raws: list[bytes], previous: Sequence[bytes] = (), **options: Any) -> None:
    parsed = [message.parse(raw) for raw in raws]
    before = [message.parse(raw) for raw in previous]
    from_parsing = tally.tally(parsed, PEOPLE, tally.Options(previous_round=before, **options))
    from_readings = tally.combine(stored(raws), PEOPLE, tally.Options(**options), stored(list(previous)))
    assert from_readings == from_parsing


@pytest.fixture(scope="module")
def corpus_threads(corpus_dir: pathlib.Path) -> list[list[bytes]]:
    return [list(archive.iter_sources([path])) for path in sorted((corpus_dir / "threads").glob("*.mbox"))]


def test_corpus_threads_tally_the_same_from_stored_readings(corpus_threads: list[list[bytes]]) -> None:
    assert len(corpus_threads) >= 5
    for raws in corpus_threads:
        assert_same(raws, committee="maven")
        assert_same(raws, committee="maven", leave_out_receipts=True)
        # A podling's round 2 with the thread as its own round 1: IPMC votes carried or overridden.
        assert_same(raws, raws, committee="maven", vote_round=2)


@FUZZ
@given(st.data())
def test_fuzzed_threads_tally_the_same_from_stored_readings(
    corpus_threads: list[list[bytes]], data: st.DataObject
) -> None:
    raws = list(data.draw(st.sampled_from(corpus_threads)))
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(raws) - 1))
        raws[where] = data.draw(mutated(raws[where]) | header_soup() | st.binary(max_size=512))
    assert_same(raws, committee="maven", vote_round=data.draw(st.sampled_from([None, 1, 2])))

"""`run --once`'s verdict on its cycle: non-zero only when it reached nothing, or the relay took no mail."""

from __future__ import annotations

import watcher.daemon as daemon


def test_a_cycle_that_reached_atr_or_a_source_is_fine() -> None:
    assert daemon.CycleReport(atr_reached=True).failure(sources=2) is None
    assert daemon.CycleReport(sources_reached=1, atr_error="down").failure(sources=2) is None


def test_a_cycle_that_reached_nothing_says_what_it_tried() -> None:
    report = daemon.CycleReport(atr_error="no answer", source_errors=["archive: refused"])
    assert report.failure(sources=1) == "the cycle reached neither ATR (no answer) nor any source (archive: refused)"
    assert daemon.CycleReport(atr_error="no answer").failure(sources=0) == "the cycle reached neither ATR (no answer)"


def test_work_another_instance_holds_is_not_a_failure() -> None:
    assert daemon.CycleReport(elsewhere=True).failure(sources=1) is None


def test_mail_the_relay_did_not_take_fails_the_cycle() -> None:
    report = daemon.CycleReport(atr_reached=True, relay_errors=["ConnectionRefusedError: ...", "again"])
    assert report.failure(sources=1) == "could not hand mail to the relay: ConnectionRefusedError: ..."

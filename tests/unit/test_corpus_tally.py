"""Every corpus thread tallied as its [RESULT] says: same counted votes, voters and outcome, no false votes.

The Maven roster below is written from facts stated in the threads and ground_truth.json: the RM's
and the RESULT's statements of who is on the PMC, and the addresses each person wrote from.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

import watcher.cli as cli

MAVEN_ROSTER = """
[committees.maven]
# PMC members named as such in the threads (thread 04's RESULT: Olivier, Herve, Robert; Brian Fox is
# annotated as a PMC member; Arnaud Héritier and Michael Osipov complete the quorums of threads 01 and 06).
members = ["rfscholte", "hboutemy", "olamy", "aheritier", "michaelo", "brianf"]
committers = ["skygo", "cstamas"]

[people.hboutemy]
name = "Hervé Boutemy"
emails = ["herve.boutemy@free.fr"]

[people.aheritier]
name = "Arnaud Héritier"
emails = ["aheritier@gmail.com"]

[people.michaelo]
name = "Michael Osipov"
emails = ["1983-01-06@gmx.net"]

[people.cstamas]
name = "Tamás Cservenák"
emails = ["tamas@cservenak.net"]

[people.brianf]
name = "Brian Fox"
emails = ["brianf@infinity.nu"]
"""

# The names the RESULT emails use, mapped to voter keys (uid, or address for people without one).
RESULT_NAMES = {
    "Robert Scholte": "rfscholte",
    "Robert": "rfscholte",
    "Hervé BOUTEMY": "hboutemy",
    "Hervé Boutemy": "hboutemy",
    "Herve": "hboutemy",
    "Olivier Lamy": "olamy",
    "Olivier": "olamy",
    "Arnaud Héritier": "aheritier",
    "Michael Osipov": "michaelo",
    "Martijn Verburg": "martijnverburg@gmail.com",
    "Mark Raynsford": "org.apache.maven.user@io7m.com",
    "Manfred Moser": "manfred@simpligility.com",
    "Eric Barboni": "skygo",
    "Andreas Sewe": "sewe@st.informatik.tu-darmstadt.de",
    "Petar Tahchiev": "paranoiabla@gmail.com",
}
# Approvals the RM counted although they carry no +1 token: reported as possible votes.
NO_TOKEN_APPROVALS = {
    "threads/01-maven-jdeprscan-plugin-3.0.0-alpha-1.mbox": {"martijnverburg@gmail.com"},
    "threads/04-maven-indexer-6.0.0.mbox": {"sewe@st.informatik.tu-darmstadt.de"},
}


@pytest.fixture(scope="module")
def roster_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("roster") / "maven.toml"
    path.write_text(MAVEN_ROSTER, encoding="utf-8")
    return path


def run_tally(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert cli.main(["tally", "--format", "json", *argv]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.corpus
def test_every_thread_reproduces_its_result(
    corpus_dir: pathlib.Path,
    ground_truth: dict[str, Any],
    roster_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert len(ground_truth["threads"]) == 6
    for case in ground_truth["threads"]:
        path = corpus_dir / case["file"]
        data = run_tally(capsys, "--roster", str(roster_file), "--committee", "maven", str(path))
        counted = {v["voter"]: v["vote"] for v in data["votes"] if v["vote"] in ("+1", "0", "-1")}
        possible = {p["email"] for p in data["possible_votes"]}
        approvals = NO_TOKEN_APPROVALS.get(case["file"], set())
        expected_yes = {RESULT_NAMES[name] for name in case["result_plus1"]} - approvals
        expected_no = {RESULT_NAMES[name] for name in case["result_minus1"]}
        if case["outcome"] == "canceled":
            # A cancelled vote has no RESULT tally; the votes cast before the cancel come from the annotations.
            expected_no = _annotated(case, "-1")
            expected_yes = _annotated(case, "+1")
        assert {k for k, v in counted.items() if v == "+1"} == expected_yes, case["file"]
        assert {k for k, v in counted.items() if v == "-1"} == expected_no, case["file"]
        assert not [k for k, v in counted.items() if v == "0"], case["file"]
        assert set(counted) == expected_yes | expected_no, f"false votes in {case['file']}"
        assert approvals <= possible, case["file"]
        assert data["passed"] is (case["outcome"] == "passed"), case["file"]
        assert [v for v in data["votes"] if v["vote"] == "?"] == [], case["file"]


def _annotated(case: dict[str, Any], value: str) -> set[str]:
    """Voters of a cancelled thread whose annotated vote is `value` (thread 02: one user's -1)."""
    froms = {m["n"]: m["from_"] for m in case["messages"]}
    found = set()
    for note in case["annotations"]:
        if note["vote"] != value:
            continue
        sender = froms[note["n"]]
        found.add(sender[sender.index("<") + 1 : sender.index(">")].lower())
    return found


@pytest.mark.corpus
def test_binding_voters_resolve_through_aliases(
    corpus_dir: pathlib.Path, roster_file: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_tally(
        capsys,
        "--roster",
        str(roster_file),
        "--committee",
        "maven",
        str(corpus_dir / "threads/06-maven-doxia-1.8.mbox"),
    )
    binding = {v["voter"] for v in data["votes"] if v["status"] == "binding"}
    assert binding == {"hboutemy", "rfscholte", "michaelo"}
    assert data["summary"]["binding"] == {"+1": 3, "0": 0, "-1": 0}
    assert data["thread"]["list"] == "dev.maven.apache.org"
    assert data["thread"]["subject"].startswith("[VOTE] Release Apache Maven Doxia")


@pytest.mark.corpus
def test_thread_selection_from_the_november_stream_matches_the_thread_file(
    corpus_dir: pathlib.Path,
    ground_truth: dict[str, Any],
    roster_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = corpus_dir / "stream" / "maven-dev-2017-11-listsao.mbox"
    tried = 0
    for case in ground_truth["threads"]:
        root = case["messages"][0]["message_id"]
        if case["messages"][0]["date"].split()[2] != "Nov":
            continue
        tried += 1
        common = ["--roster", str(roster_file), "--committee", "maven"]
        alone = run_tally(capsys, *common, str(corpus_dir / case["file"]))
        picked = run_tally(capsys, *common, "--thread", root, str(stream))
        assert picked["votes"] == alone["votes"], case["file"]
        assert picked["passed"] == alone["passed"], case["file"]
        assert picked["thread"] == alone["thread"], case["file"]
    assert tried == 4


def test_command_line_exits_2_on_unreadable_input(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.mbox"
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "tally", str(missing)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "nope.mbox" in proc.stderr
    bad_roster = tmp_path / "roster.toml"
    bad_roster.write_text("[committees.maven]\nmembers = 'rfscholte'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "tally", "--roster", str(bad_roster), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "committees.maven.members" in proc.stderr

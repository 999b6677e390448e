"""`vote-watcher tally` never guesses (issue 13, items 2 and 3): no roster, no verdict, and why; exit 2 on
input that names no single vote or contradicts itself; the ASF's public roster files read over HTTP.

The public roster files are served on loopback by a real HTTP server, in the shape Whimsy publishes
(public_ldap_projects.json: `lastTimestamp`, `projects.<name>.owners` (PMC) and `.members` (committers);
public_ldap_people.json: `people.<uid>.name`). Those files name no address but uid@apache.org, so the
corpus voters who wrote from other addresses are given as aliases in a roster TOML of people only.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import watcher.cli as cli
from tests.mailfactory import mail

MAVEN_PMC = ["rfscholte", "hboutemy", "olamy", "aheritier", "michaelo", "brianf"]
PROJECTS = {
    "lastTimestamp": "20171201000000Z",
    "project_count": 2,
    "roster_counts": {},
    "projects": {
        "maven": {
            "createTimestamp": "20030101000000Z",
            "modifyTimestamp": "20171201000000Z",
            "member_count": 8,
            "owner_count": 6,
            "members": [*MAVEN_PMC, "skygo", "cstamas"],
            "owners": MAVEN_PMC,
            "pmc": True,
        },
        "lantern": {
            "createTimestamp": "20200101000000Z",
            "modifyTimestamp": "20171201000000Z",
            "member_count": 1,
            "owner_count": 1,
            "members": ["jdoe"],
            "owners": ["jdoe"],
            "podling": "current",
        },
    },
}
PEOPLE = {
    "lastCreateTimestamp": "20171201000000Z",
    "people_count": 3,
    "people": {
        "hboutemy": {"name": "Hervé Boutemy", "createTimestamp": "20071201000000Z"},
        "michaelo": {"name": "Michael Osipov"},
        "rfscholte": {"name": "Robert Scholte"},
    },
}
# The addresses the corpus's PMC members wrote from (facts from the threads, as in test_corpus_tally.py).
ALIASES = """
[people.hboutemy]
emails = ["herve.boutemy@free.fr"]
[people.aheritier]
emails = ["aheritier@gmail.com"]
[people.michaelo]
emails = ["1983-01-06@gmx.net"]
[people.cstamas]
emails = ["tamas@cservenak.net"]
[people.brianf]
emails = ["brianf@infinity.nu"]
"""
OUTCOMES = {"passed": "passed", "canceled": "cancelled"}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def serving(folder: pathlib.Path) -> Iterator[str]:
    """A real HTTP server on a free loopback port serving `folder`; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def public_roster(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The public roster files on loopback, with an empty cache folder of the test's own."""
    folder = tmp_path / "public"
    folder.mkdir()
    (folder / "public_ldap_projects.json").write_text(json.dumps(PROJECTS), encoding="utf-8")
    (folder / "public_ldap_people.json").write_text(json.dumps(PEOPLE), encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(folder) as url:
        yield url


@pytest.fixture
def aliases(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "aliases.toml"
    path.write_text(ALIASES, encoding="utf-8")
    return path


def tally_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert cli.main(["tally", "--quiet", "--format", "json", *argv]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def tally_fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(["tally", "--quiet", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


# --- The corpus: no roster, then the public roster ---------------------------------------------


@pytest.mark.corpus
def test_corpus_with_no_roster_gives_no_verdict_and_says_why(
    corpus_dir: pathlib.Path, ground_truth: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for case in ground_truth["threads"]:
        path = str(corpus_dir / case["file"])
        data = tally_json(capsys, path)
        assert data["passed"] is None, case["file"]
        assert data["outcome"] == ("cancelled" if case["outcome"] == "canceled" else "unknown"), case["file"]
        assert data["no_verdict_because"] == "no roster was given for 'maven' (give --roster, --roster-url or --atr)"
        assert {vote["status"] for vote in data["votes"]} <= {"unknown"}
        assert not any("not a member" in reason for vote in data["votes"] for reason in vote["reasons"])
        assert cli.main(["tally", "--quiet", path]) == 0
        text = capsys.readouterr().out
        assert "There were 0 binding votes" not in text
        assert "does not pass" not in text
        assert "Binding status unknown: no roster was given for 'maven'" in text


@pytest.mark.corpus
def test_corpus_with_the_public_roster_gives_the_results_outcome(
    corpus_dir: pathlib.Path,
    ground_truth: dict[str, Any],
    public_roster: str,
    aliases: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for case in ground_truth["threads"]:
        data = tally_json(
            capsys, "--roster-url", public_roster, "--roster", str(aliases), str(corpus_dir / case["file"])
        )
        assert data["outcome"] == OUTCOMES[case["outcome"]], case["file"]
        assert data["stopped_at"]["kind"] == ("result" if case["outcome"] == "passed" else "cancel"), case["file"]
        assert data["roster"][0].startswith(f"{public_roster}/public_ldap_projects.json of 2017-12-01 00:00 UTC")
        binding = {vote["voter"] for vote in data["votes"] if vote["status"] == "binding"}
        assert binding <= set(MAVEN_PMC), case["file"]


@pytest.mark.corpus
def test_public_roster_without_aliases_names_the_votes_it_cannot_place(
    corpus_dir: pathlib.Path, public_roster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tally_json(capsys, "--roster-url", public_roster, str(corpus_dir / "threads/06-maven-doxia-1.8.mbox"))
    assert (data["passed"], data["outcome"]) == (None, "unknown")
    assert "herve.boutemy@free.fr (hboutemy?)" in data["no_verdict_because"]
    assert "1983-01-06@gmx.net (michaelo?)" in data["no_verdict_because"]
    assert data["summary"]["binding"] == {"+1": 1, "0": 0, "-1": 0}


def test_public_roster_is_cached_with_its_date_and_used_when_the_server_is_gone(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "public"
    folder.mkdir()
    (folder / "public_ldap_projects.json").write_text(json.dumps(PROJECTS), encoding="utf-8")
    (folder / "public_ldap_people.json").write_text(json.dumps(PEOPLE), encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    thread = vote_thread(tmp_path, "lantern")
    with serving(folder) as url:
        first = tally_json(capsys, "--roster-url", url, "--committee", "lantern", str(thread))
    assert "(fetched " in first["roster"][0]
    assert list((tmp_path / "cache" / "vote-watcher" / "rosters").glob("*/public_ldap_projects.json"))
    second = tally_json(capsys, "--roster-url", url, "--committee", "lantern", str(thread))
    assert "(cached copy " in second["roster"][0]
    assert second["votes"][0]["status"] == "binding"


def test_public_roster_unreachable_and_not_cached_is_an_input_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "empty"
    folder.mkdir()
    with serving(folder) as url:
        error = tally_fails(capsys, "--roster-url", url, str(vote_thread(tmp_path, "lantern")))
    assert f"{url}: cannot read the public roster: HTTP 404" in error


# --- Input that names no single vote, or contradicts itself ------------------------------------


def vote_thread(folder: pathlib.Path, project: str, *, name: str = "thread.mbox", vote: bool = True) -> pathlib.Path:
    """An mbox with a [VOTE] for `project` (unless `vote` is False) and one +1 from jdoe@apache.org."""
    subject = f"[VOTE] Release Apache {project.title()} 1.0"
    raws = []
    if vote:
        raws.append(mail("Please vote.\n", subject=subject, message_id=f"vote-{project}@x", in_reply_to=None))
    raws.append(
        mail("+1\n", sender="J Doe <jdoe@apache.org>", subject=f"Re: {subject}", message_id=f"r-{project}@x",
             in_reply_to=f"vote-{project}@x")
    )  # fmt: skip
    path = folder / name
    path.write_bytes(b"".join(b"From x@y Mon Jan  1 00:00:00 2024\n" + raw + b"\n" for raw in raws))
    return path


def test_several_vote_threads_without_thread_exit_2_listing_them(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = vote_thread(tmp_path, "lantern", name="a.mbox")
    two = vote_thread(tmp_path, "beacon", name="b.mbox")
    error = tally_fails(capsys, str(one), str(two))
    assert "2 vote threads in the given sources; pick one with --thread" in error
    assert "  <vote-lantern@x>  [VOTE] Release Apache Lantern 1.0" in error
    assert "  <vote-beacon@x>  [VOTE] Release Apache Beacon 1.0" in error
    data = tally_json(capsys, "--thread", "<vote-beacon@x>", str(one), str(two))
    assert data["thread"]["message_id"] == "<vote-beacon@x>"


def test_no_vote_message_exits_2(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = tally_fails(capsys, str(vote_thread(tmp_path, "lantern", vote=False)))
    assert "no [VOTE] message in the given sources" in error


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["--committee", "lanter"],
            "the roster has no committee 'lanter'; it has: lantern, maven",
            id="committee-typo",
        ),
        pytest.param(
            ["--round", "2"],
            "--round 2 counts IPMC members as binding, but the roster has no 'incubator' committee",
            id="round-2-without-incubator",
        ),
        pytest.param(
            ["--round", "1", "--previous-round", "PREVIOUS"],
            "--previous-round carries round-1 votes into round 2; it contradicts --round 1",
            id="previous-round-with-round-1",
        ),
    ],
)
def test_contradictory_options_exit_2(
    tmp_path: pathlib.Path, public_roster: str, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    thread = vote_thread(tmp_path, "lantern")
    argv = [str(thread) if arg == "PREVIOUS" else arg for arg in argv]
    error = tally_fails(capsys, "--roster-url", public_roster, *argv, str(thread))
    assert expected in error


def test_receipts_are_left_out_by_their_shape_and_listed(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thread = vote_thread(tmp_path, "lantern")
    receipt = mail(
        "+1 (binding) (jdoe) J Doe\n\nThis vote was cast on the Apache Trusted Releases platform.\n",
        sender="J Doe <jdoe@apache.org>",
        subject="Re: [VOTE] Release Apache Lantern 1.0",
        message_id="receipt@x",
        in_reply_to="vote-lantern@x",
    )
    with thread.open("ab") as handle:
        handle.write(b"From x@y Mon Jan  1 00:00:00 2024\n" + receipt + b"\n")
    data = tally_json(capsys, str(thread))
    assert data["receipts"] == ["<receipt@x>"]
    assert [vote["message_id"] for vote in data["votes"]] == ["<r-lantern@x>"]


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["tally", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "vote-watcher tally --roster-url --thread" in out
    assert "--quiet" in out

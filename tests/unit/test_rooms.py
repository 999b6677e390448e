"""The map of the code (README, "The map of the code") holds: no module imports a room below its own.

Every module under watcher/ is read with `ast` (not imported), so every import counts: at module level,
inside functions (the commands' lazy imports), under `if TYPE_CHECKING:` (an annotation that names a
room below is the same wrong arrow, only unchecked at run time), and `importlib.import_module` of a
constant name.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import re
from collections.abc import Iterator, Sequence
from typing import Final

import pytest

ROOT: Final = pathlib.Path(__file__).resolve().parents[2]
PACKAGE: Final = ROOT / "watcher"

# The rooms from the top down, as the README's table lists them: each may import the rooms above it.
ROOMS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("core", ("watcher/core/",)),
    ("services", ("watcher/services/",)),
    ("store", ("watcher/store/", "watcher/migrations/")),
    ("edges", ("watcher/atr/", "watcher/sources/", "watcher/mail/mailer.py", "watcher/whimsy.py")),
    ("middle floor", ("watcher/flow/", "watcher/mail/render.py", "watcher/mail/outbox.py")),
    ("daemon", ("watcher/daemon.py",)),
    ("config and wiring", ("watcher/config.py", "watcher/wiring.py")),
    ("commands", ("watcher/commands/", "watcher/cli.py", "watcher/__main__.py")),
    ("sandbox", ("watcher/sandbox/",)),
)
# The table's "may import" column says "everything" for the commands: `demo` runs the sandbox's stage.
ALSO_BELOW: Final[dict[str, frozenset[str]]] = {"commands": frozenset({"sandbox"})}
# `watcher/__init__.py` (the version) is above every room: importing any module imports it.
TOP: Final = "the package"


def _rank(room: str) -> int:
    return -1 if room == TOP else [name for name, _ in ROOMS].index(room)


def module_name(path: pathlib.Path) -> str:
    """`watcher/flow/desk.py` -> `watcher.flow.desk`; a package's `__init__.py` is the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES: Final = _modules()


@functools.cache
def room_of(module: str) -> str | None:
    """The room of a module of watcher (the longest path of the table that holds it), or None."""
    path = MODULES[module].relative_to(ROOT).as_posix()
    if module == "watcher":
        return TOP
    best: tuple[int, str] | None = None
    for room, prefixes in ROOMS:
        for prefix in prefixes:
            held = path.startswith(prefix) if prefix.endswith("/") else path == prefix
            if held and (best is None or len(prefix) > best[0]):
                best = (len(prefix), room)
    if best is not None:
        return best[1]
    if path.endswith("/__init__.py"):
        # A package no row names (watcher/mail/) belongs to the highest room among its modules: all may import it.
        rooms = [room_of(name) for name in MODULES if name.startswith(f"{module}.")]
        known = [room for room in rooms if room is not None]
        return min(known, key=_rank) if known else None
    return None


def _resolve(name: str) -> str:
    """The module an imported name lives in: the longest leading part of it that is a module of watcher."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return name


def _absolute(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _dynamic(node: ast.Call) -> str | None:
    """The constant part of `importlib.import_module("watcher....")` (an f-string's leading text)."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "import_module") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".")
    return None


@functools.cache
def _imports(source: str, module: str) -> tuple[tuple[int, str], ...]:
    # Each test reads the same sources again (one changed): each text is parsed once.
    return tuple(imports_of(ast.parse(source), module))


def imports_of(tree: ast.AST, module: str) -> Iterator[tuple[int, str]]:
    """(line, module of watcher) for every import in the tree, at any depth."""
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            names = [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call):
            names = [name for name in (_dynamic(node),) if name]
        for name in names:
            if name == "watcher" or name.startswith("watcher."):
                yield node.lineno, _resolve(name)


def wrong_arrows(modules: dict[str, str]) -> list[str]:
    """Each import of a room below the importer's own, as `file:line: importer (room) imports target (room)`."""
    found: list[str] = []
    for module, source in sorted(modules.items()):
        room = room_of(module)
        assert room is not None, f"{module} is in no room of the map"
        for line, target in _imports(source, module):
            target_room = room_of(target) if target in MODULES else None
            assert target_room is not None, f"{module}:{line} imports {target}, which is in no room"
            if _rank(target_room) <= _rank(room) or target_room in ALSO_BELOW.get(room, frozenset()):
                continue
            where = MODULES[module].relative_to(ROOT)
            found.append(f"{where}:{line}: {module} ({room}) imports {target} ({target_room})")
    return found


def _sources() -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in MODULES.items()}


def test_every_module_is_in_a_room() -> None:
    assert [name for name in MODULES if room_of(name) is None] == []
    assert room_of("watcher.mail") == "edges"
    assert room_of("watcher.mail.outbox") == "middle floor"


def test_no_import_points_to_a_room_below() -> None:
    assert wrong_arrows(_sources()) == []


@pytest.mark.parametrize(
    ("module", "line", "target"),
    [
        ("watcher.store.database", "import watcher.mail.outbox as outbox", "watcher.mail.outbox (middle floor)"),
        ("watcher.core.tally", "from watcher.services import wallclock", "watcher.services.wallclock (services)"),
        ("watcher.sources.imap", "from ..flow.worker import Worker", "watcher.flow.worker (middle floor)"),
        ("watcher.flow.desk", "if TYPE_CHECKING:\n    import watcher.daemon", "watcher.daemon (daemon)"),
        ("watcher.daemon", "def later() -> None:\n    import watcher.wiring", "watcher.wiring (config and wiring)"),
        ("watcher.wiring", "import watcher.commands.run as run", "watcher.commands.run (commands)"),
        ("watcher.daemon", "importlib.import_module(f'watcher.sandbox.{name}')", "watcher.sandbox (sandbox)"),
    ],
)
def test_a_planted_import_of_a_room_below_is_found(module: str, line: str, target: str) -> None:
    sources = _sources()
    sources[module] += f"\n\n{line}\n"
    assert [arrow.partition(" imports ")[2] for arrow in wrong_arrows(sources)] == [target]


def test_imports_of_rooms_above_and_the_commands_demo_pass() -> None:
    sources = {
        "watcher.flow.desk": "import watcher.store.records as records\nfrom watcher.core import tally\n",
        "watcher.commands.demo": "def main() -> None:\n    import watcher.sandbox.stage as stage\n",
        "watcher.sandbox.stage": "import watcher.wiring as wiring\nimport watcher\n",
    }
    assert wrong_arrows(sources) == []


def _readme_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.partition("### The map of the code")[2].partition("\n#")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.findall(r"`([^`]+)`", row.split("|")[1]) for row in rows]


def test_the_readme_table_is_this_map() -> None:
    rows: Sequence[list[str]] = _readme_rows()
    assert rows[-1][0] == "tests/"
    assert [tuple(row) for row in rows[:-1]] == [prefixes for _, prefixes in ROOMS]

"""One name per thing: a watcher module is imported under its own last name, and no two modules share one.

An alias (`import watcher.store as store_api`) gives one module two names across the code; a shared base
name (two `client.py`) makes the one-name import impossible for a file that needs both.
"""

from __future__ import annotations

import ast
import collections
import pathlib
from typing import Final

ROOT: Final = pathlib.Path(__file__).resolve().parents[2]
SCANNED: Final = ("watcher", "tests", "bench")


def renamed_imports(source: str) -> list[str]:
    """The imports in `source` that bind a watcher module (or a name from one) under another name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name} as {a.asname}"
                for a in node.names
                if a.name.split(".")[0] == "watcher" and a.asname not in (None, a.name.split(".")[-1])
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "watcher":
            found += [
                f"from {node.module} import {a.name} as {a.asname}"
                for a in node.names
                if a.asname not in (None, a.name)
            ]
    return found


def shared_base_names(paths: list[pathlib.Path]) -> dict[str, list[str]]:
    """Module base names (without `__init__.py`) that more than one of `paths` has."""
    by_name: dict[str, list[str]] = collections.defaultdict(list)
    for path in paths:
        if path.name != "__init__.py":
            by_name[path.stem].append(path.relative_to(ROOT).as_posix())
    return {name: sorted(where) for name, where in by_name.items() if len(where) > 1}


def _python_files(folder: str) -> list[pathlib.Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_every_watcher_module_is_imported_under_its_own_name() -> None:
    files = [path for folder in SCANNED for path in _python_files(folder)]
    assert len(files) > 100  # the scan found the code
    aliased = {
        path.relative_to(ROOT).as_posix(): found
        for path in files
        if (found := renamed_imports(path.read_text(encoding="utf-8")))
    }
    assert aliased == {}


def test_no_two_watcher_modules_share_a_name() -> None:
    assert shared_base_names(_python_files("watcher")) == {}


def test_the_checks_see_an_alias_and_a_shared_name() -> None:
    source = "import watcher.store as store_api\nimport watcher.store as store\nfrom watcher.store import Store as S\n"
    assert renamed_imports(source) == ["import watcher.store as store_api", "from watcher.store import Store as S"]
    twins = [ROOT / "watcher/atr/client.py", ROOT / "watcher/sources/client.py", ROOT / "watcher/atr/__init__.py"]
    assert shared_base_names(twins) == {"client": ["watcher/atr/client.py", "watcher/sources/client.py"]}

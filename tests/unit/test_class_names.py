"""No two classes in watcher/ share a name: one name means one thing (issue 15, "One name per thing")."""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterable

import watcher

PACKAGE = pathlib.Path(watcher.__file__).parent


def class_names(files: Iterable[pathlib.Path], root: pathlib.Path) -> dict[str, list[str]]:
    """Every class name (nested ones too) → where it is defined ("path:line")."""
    found: dict[str, list[str]] = {}
    for path in sorted(files):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def shared(found: dict[str, list[str]]) -> dict[str, list[str]]:
    """The names defined more than once."""
    return {name: places for name, places in found.items() if len(places) > 1}


def test_no_two_classes_in_watcher_share_a_name() -> None:
    found = class_names(PACKAGE.rglob("*.py"), PACKAGE)
    assert len(found) > 100  # the scan saw the package
    assert shared(found) == {}


def test_the_scan_finds_a_planted_pair(tmp_path: pathlib.Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "one.py").write_text("class Settings:\n    pass\n")
    nested = "def f() -> None:\n    class Settings:\n        pass\n\n\nclass Other:\n    pass\n"
    (tmp_path / "two.py").write_text(nested)
    found = class_names(tmp_path.rglob("*.py"), tmp_path)
    assert shared(found) == {"Settings": ["core/one.py:1", "two.py:2"]}

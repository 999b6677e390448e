"""Runs every benchmark in bench/ in turn; each prints `name: value unit` lines."""

from __future__ import annotations

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    """Run the benchmarks one after another, so they do not disturb each other's figures."""
    failed = []
    for script in sorted(HERE.glob("*.py")):
        if script.name in ("run_all.py", "__init__.py") or script.name.startswith("_"):
            continue
        print(f"# {script.name}", flush=True)
        status = subprocess.run([sys.executable, str(script)], check=False).returncode
        if status != 0:
            failed.append(script.name)
    if failed:
        print(f"# failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

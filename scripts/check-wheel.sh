#!/bin/sh
# The wheel ships the product and its licence: LICENSE and NOTICE in it, no test scaffolding,
# and the demo's servers only behind the `demo` extra.
set -eu
PYTHON=${1:-.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$out" . >/dev/null
"$PYTHON" - "$out"/*.whl <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
meta = zipfile.ZipFile(sys.argv[1]).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
problems = [f"{f} is not in the wheel" for f in ("LICENSE", "NOTICE") if not any(n.endswith(f"/licenses/{f}") for n in names)]
problems += [f"{n} ships in the wheel" for n in names if n.startswith(("tests/", "watcher/testing/"))]
problems += [f"{p} is a runtime dependency" for p in ("aiohttp", "aiosmtpd")
             if any(line.startswith(f"Requires-Dist: {p}") and "extra ==" not in line for line in meta.splitlines())]
for problem in problems:
    print(f"check-wheel: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
echo "check-wheel: LICENSE and NOTICE in the wheel, no test scaffolding, the demo's servers in the demo extra"

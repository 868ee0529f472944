"""Instructions per request, counted by valgrind: a comparison the shared machine cannot disturb.

Wall-clock and even CPU-time figures swing by half from run to run on this
shared 2-core machine. valgrind's cachegrind counts the instructions a process
executes, which does not depend on what else runs. For each endpoint of
`wsgi_cost.py` this runs the app twice under cachegrind, with `--calls 0` and
with `--calls N` (same fixture, same hash seed), and divides the difference by
N: the setup cancels out and what is left is the per-request cost. Instructions
are not time (a cache miss costs more than an add), so quote these beside the
wrk figures of `load.py`, not instead of them. Needs Debian's valgrind. Run:
`.venv/bin/python bench/instructions.py`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wsgi_cost import make_fixture

HERE = Path(__file__).resolve().parent
ENDPOINTS = ("bare Flask GET", "service /healthz", "service token", "naive token")


def instructions(endpoint: str, calls: int, fixture: Path) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, str(HERE / "wsgi_cost.py"), "--only", endpoint, "--calls", str(calls),
         "--fixture", str(fixture)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    ).stderr  # fmt: skip
    match = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if not match:
        raise SystemExit(f"no instruction count from valgrind:\n{out}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    fixture = Path(tempfile.mkdtemp(prefix="identity-instructions-"))
    make_fixture(fixture)
    jobs = [(e, n) for e in ENDPOINTS for n in (0, args.calls)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda j: instructions(*j, fixture), jobs), strict=True))
    per = {e: (counts[e, args.calls] - counts[e, 0]) / args.calls for e in ENDPOINTS}
    print(f"instructions per request ({args.calls} calls, valgrind cachegrind)")
    for endpoint, count in per.items():
        print(f"{endpoint:20} {count / 1000:9.1f} k")
    token = per["service token"]
    print(f"token / healthz: {token / per['service /healthz']:.2f}")
    print(f"token / naive:   {token / per['naive token']:.2f}")
    shutil.rmtree(fixture, ignore_errors=True)


if __name__ == "__main__":
    main()

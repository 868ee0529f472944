"""Instructions per request, counted by valgrind: a comparison the shared machine cannot disturb.

Wall-clock and even CPU-time figures swing by half from run to run on this
shared 2-core machine. valgrind's cachegrind counts the instructions a process
executes, which does not depend on what else runs. For each endpoint of
`wsgi_cost.py` (among them issue 13's fixture: RS256 bearer whose key comes
from a JWKS served on 127.0.0.1 by this process, body `{}`, 6 attributes from
claims, with and without a SQLite profile) this runs the app twice under
cachegrind, with `--calls 0` and with `--calls N` (same fixture, same hash
seed), and divides the difference by
N: the setup cancels out and what is left is the per-request cost. With
`--baseline DIR` the same endpoints are also counted on another checkout's
identity_service, in the same run and on the same fixture. Instructions
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

from serving import serving_jwks
from wsgi_cost import make_fixture

HERE = Path(__file__).resolve().parent
ENDPOINTS = (
    "bare Flask GET",
    "service /healthz",
    "service token",
    "service token {}",
    "token + SQLite",
    "issue token {}",
    "issue {} + SQLite",
    "naive token",
)


def instructions(endpoint: str, calls: int, fixture: Path, jwks_url: str, source: str = "") -> int:
    """Instructions of `calls` requests to `endpoint` (with identity_service from `source`)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "BENCH_SOURCE": source}
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, str(HERE / "wsgi_cost.py"), "--only", endpoint, "--calls", str(calls),
         "--fixture", str(fixture), "--jwks-url", jwks_url],
        capture_output=True, text=True, check=True, env=env,
    ).stderr  # fmt: skip
    match = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if not match:
        raise SystemExit(f"no instruction count from valgrind:\n{out}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        default="",
        help="another checkout (e.g. `git worktree add /tmp/before main`): measured in the "
        "same run, with the same fixture, side by side",
    )
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    fixture = Path(tempfile.mkdtemp(prefix="identity-instructions-"))
    _, pem = make_fixture(fixture)
    sources = {"": "this tree", **({args.baseline: "baseline"} if args.baseline else {})}
    jobs = [(e, n, src) for src in sources for e in ENDPOINTS for n in (0, args.calls)]
    # The issue fixture's JWKS, served from this process: outside what valgrind counts.
    with serving_jwks(pem) as jwks_url, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        measured = pool.map(lambda j: instructions(j[0], j[1], fixture, jwks_url, j[2]), jobs)
        counts = dict(zip(jobs, measured, strict=True))
    per = {
        (e, src): (counts[e, args.calls, src] - counts[e, 0, src]) / args.calls
        for e in ENDPOINTS
        for src in sources
    }
    print(f"instructions per request ({args.calls} calls, valgrind cachegrind)")
    print(f"{'endpoint':20}" + "".join(f"{label:>14}" for label in sources.values()))
    for endpoint in ENDPOINTS:
        row = "".join(f"{per[endpoint, src] / 1000:12.1f} k" for src in sources)
        print(f"{endpoint:20}{row}")
    for src, label in sources.items():
        token, body = per["service token", src], per["service token {}", src]
        print(f"{label}: token / healthz {token / per['service /healthz', src]:.2f}, "
              f"token / naive {token / per['naive token', src]:.2f}, "
              f"SQLite profile adds {(per['token + SQLite', src] - token) / 1000:.1f} k, "
              f"a {{}} body adds {(body - token) / 1000:.1f} k")  # fmt: skip
        issue, issue_sql = per["issue token {}", src], per["issue {} + SQLite", src]
        print(f"{label}: issue fixture (JWKS, 6 attributes, {{}}) {issue / 1000:.1f} k "
              f"(target <= 1,014 k), its SQLite profile adds {(issue_sql - issue) / 1000:.1f} k "
              f"(target <= 150 k)")  # fmt: skip
    shutil.rmtree(fixture, ignore_errors=True)


if __name__ == "__main__":
    main()

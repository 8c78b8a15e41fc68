#!/usr/bin/env python3
"""Runs the Autobahn cases (via kosoku) against the echo example and judges the result.

Usage: driver.py URL --mode full|production [--outdir DIR] [--timeout S] [-p N] [-i CASE]...

Modes:
  full        every case except compression (12.*, 13.*: permessage-deflate is not
              negotiated). Passes when every case passes (OK, NON-STRICT, INFORMATIONAL
              for both the exchange and the close verdict).
  production  the echo endpoint started with `--production` (64 KiB message limit):
              cases whose message exceeds the limit must end with the server's close
              code 1009; every other selected case must pass as in `full`.

Prints a summary (counts per outcome) and exits 0 when the run meets the mode's goal,
1 when it does not, 2 on a harness error (kosoku missing, timeout, no results).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import time
from fnmatch import fnmatchcase

try:
    import kosoku
except ImportError:  # pragma: no cover - run.sh installs it
    print("driver: kosoku is not installed (pip install kosoku)", file=sys.stderr)
    sys.exit(2)

COMPRESSION = ["12.*", "13.*"]

# The production run: the large-message cases plus a few ordinary ones (including the
# cases exactly at the 64 KiB limit, which must still be echoed).
PRODUCTION = [
    "1.1.1", "1.1.6", "1.1.7", "1.1.8", "1.2.8", "2.6", "3.1", "5.19", "6.4.1",
    "7.1.1", "7.5.1", "10.1.1",
    "9.1.*", "9.2.*", "9.3.1", "9.3.9", "9.4.1", "9.4.9", "9.5.1", "9.6.6",
]

KIB, MIB = 1 << 10, 1 << 20
PRODUCTION_LIMIT = 64 * KIB


def message_bytes(case_id: str) -> int:
    """The size of the largest message a case sends (the 9.x cases and 10.1.1; the
    other cases stay at or under 65536 bytes, see 1.1.7/1.1.8)."""
    parts = [int(p) for p in case_id.split(".")]
    if parts[0] == 9 and parts[1] in (1, 2):
        return [64 * KIB, 256 * KIB, MIB, 4 * MIB, 8 * MIB, 16 * MIB][parts[2] - 1]
    if parts[0] == 9 and parts[1] in (3, 4):
        return 4 * MIB
    if parts[0] == 9 and parts[1] in (5, 6):
        return MIB
    if parts[0] == 9 and parts[1] in (7, 8):
        return [0, 16, 64, 256, 1 * KIB, 4 * KIB][parts[2] - 1]
    return 64 * KIB


PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def sort_key(case_id: str) -> list[int]:
    return [int(p) for p in case_id.split(".")]


def selected(patterns: list[str], case_id: str) -> bool:
    return any(fnmatchcase(case_id, p) for p in patterns)


async def run(url: str, include, exclude, parallelism: int):
    try:
        return await kosoku.run_fuzzingclient(url, include, exclude, concurrency=parallelism)
    except kosoku.FailureError as failure:
        return list(failure.results)


def write_reports(results, outdir: str) -> None:
    """kosoku's own report files (per-case JSON + HTML, index.json, index.html)."""
    try:
        from kosoku._report import write_reports as kosoku_write

        kosoku_write(results, outdir)
    except Exception as error:  # the report writer is private API: never fatal
        print(f"driver: kosoku report writer failed: {error!r}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="ws://127.0.0.1:PORT/ws")
    parser.add_argument("--mode", choices=["full", "production"], default="full")
    parser.add_argument("--outdir", default=None, help="report directory")
    parser.add_argument("--timeout", type=float, default=1500, help="whole-run limit (s)")
    parser.add_argument("-p", "--parallelism", type=int, default=1)
    parser.add_argument("-i", "--include", action="append", help="override the selection")
    args = parser.parse_args()

    include = args.include or {"full": None, "production": PRODUCTION}[args.mode]
    exclude = COMPRESSION
    started = time.monotonic()
    try:
        results = asyncio.run(
            asyncio.wait_for(run(args.url, include, exclude, args.parallelism), args.timeout)
        )
    except (asyncio.TimeoutError, TimeoutError):
        print(f"driver: run did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    results = sorted(results, key=lambda r: sort_key(r.case_id))
    if not results:
        print("driver: no case ran", file=sys.stderr)
        return 2
    if args.outdir:
        write_reports(results, args.outdir)

    behavior = collections.Counter(r.behavior.value for r in results)
    close = collections.Counter(r.behavior_close.value for r in results)
    order = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR"]

    def counts(counter) -> str:
        keys = order + sorted(k for k in counter if k not in order)
        return "  ".join(f"{k}={counter[k]}" for k in keys if counter[k] or k in order[:5])

    print(f"\n== kosoku {args.mode}: {len(results)} cases in {elapsed:.1f} s ({args.url})")
    print(f"behavior:      {counts(behavior)}")
    print(f"behaviorClose: {counts(close)}")

    problems: list[str] = []
    expected_1009: list[str] = []
    got_1009: list[str] = []
    for r in results:
        oversize = args.mode == "production" and message_bytes(r.case_id) > PRODUCTION_LIMIT
        if oversize:
            expected_1009.append(r.case_id)
            if r.remote_close_code == 1009:
                got_1009.append(r.case_id)
            else:
                problems.append(
                    f"{r.case_id}: expected close 1009 (message {message_bytes(r.case_id)} B "
                    f"> {PRODUCTION_LIMIT} B), got remote close {r.remote_close_code} "
                    f"[{r.behavior.value}/{r.behavior_close.value}]"
                )
        elif not (r.behavior.value in PASSING and r.behavior_close.value in PASSING):
            problems.append(
                f"{r.case_id}: behavior={r.behavior.value} close={r.behavior_close.value} "
                f"remote_close={r.remote_close_code} expected_close="
                f"{json.dumps(r.expected_close, default=str)} :: {r.result} | {r.result_close}"
            )

    slow = sorted(results, key=lambda r: r.duration, reverse=True)[:5]
    print("slowest:       " + "  ".join(f"{r.case_id}={r.duration}ms" for r in slow))
    if args.mode == "production":
        other = [r.case_id for r in results if r.case_id not in expected_1009]
        passed_other = [
            r.case_id for r in results
            if r.case_id not in expected_1009
            and r.behavior.value in PASSING and r.behavior_close.value in PASSING
        ]
        unclean = [r.case_id for r in results if r.case_id in got_1009 and not r.was_clean]
        print(f"over {PRODUCTION_LIMIT} B, closed 1009: {len(got_1009)}/{len(expected_1009)} "
              f"({' '.join(got_1009)}); closing handshake unclean: {unclean or 'none'}")
        print(f"within the limit, passed: {len(passed_other)}/{len(other)}")
    passed = len(results) - len(problems)
    summary = {
        "mode": args.mode,
        "cases": len(results),
        "seconds": round(elapsed, 1),
        "behavior": dict(behavior),
        "behaviorClose": dict(close),
        "closed_1009": got_1009,
        "expected_1009": expected_1009,
        "problems": problems,
        "per_case": {
            r.case_id: [r.behavior.value, r.behavior_close.value, r.remote_close_code, r.duration]
            for r in results
        },
    }
    if args.outdir:
        os.makedirs(args.outdir, exist_ok=True)
        with open(os.path.join(args.outdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(f"reports:       {args.outdir}/index.html, summary.json")
    for line in problems:
        print("FAIL " + line)
    # The plain closing line CI runners read.
    print(f"conformance: {passed} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

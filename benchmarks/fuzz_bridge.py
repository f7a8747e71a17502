"""
The bridge fuzz of ``tests/test_fuzz.py``, for many more cases and a random seed.

    python benchmarks/fuzz_bridge.py --cases 20000 [--seed N] [--show 3] [--log FILE]

It starts an embedded Crossbar.io router, the fuzz app (every bridge mount, a JSON callee, a
msgpack witness), runs hypothesis for ``--cases`` generated requests (counting violations
instead of stopping at the first), checks the end state, and prints a few examples of each
kind of violation and one summary line:

    fuzz: cases=20000 (valid 4700) statuses {200: ..., 400: ...} violations=0
    session_unchanged=yes elapsed=190.2s seed=1234

The exit status is 1 when anything was violated. ``--seed`` replays a run (on the same code).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogBeginner, textFileLogObserver

from tests.test_fuzz import Live, final_checks, open_fds, run_fuzz, violation_kind
from wampweb._router import EmbeddedRouter


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5000, help="generated requests")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (random)")
    parser.add_argument("--show", type=int, default=3, help="examples shown per violation")
    parser.add_argument("--log", default=None, help="write the app's log to this file")
    return parser.parse_args(argv)


async def fuzz(reactor: Any, args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    router = EmbeddedRouter()
    router.start()
    try:
        await router.wait_ready(reactor)
        live = Live(reactor, router)
        await live.start()
        try:
            start = live.state()
            fds_before = open_fds()
            started = time.monotonic()
            stats = await deferToThread(
                run_fuzz, live, cases=args.cases, derandomize=False, seed=seed, stop_at_first=False
            )
            elapsed = time.monotonic() - started
            problems = await final_checks(live, start, fds_before)
            end = live.state()
        finally:
            await live.stop()
    finally:
        router.close()

    shown: dict[str, int] = {}
    for problem, example in stats.violations:
        kind = violation_kind(problem)
        shown[kind] = shown.get(kind, 0) + 1
        if shown[kind] <= args.show:
            print(f"VIOLATION {problem}\n{example}\n")
    for problem in problems:
        print(f"END STATE {problem}")
    for kind, count in stats.kinds.most_common():
        print(f"  {count:6d} x {kind}")
    same = end.session_id == start.session_id and end.joins == start.joins == 1
    unchanged = "yes" if same else "no"
    print(
        f"fuzz: {stats.summary()} session_unchanged={unchanged} elapsed={elapsed:.1f}s seed={seed}"
    )
    return 1 if stats.kinds or problems else 0


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.log:
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(open(args.log, "a"))],  # noqa: SIM115 (lives until exit)
            redirectStandardIO=False,
        )

    async def run(reactor: Any) -> None:
        code = await fuzz(reactor, args)
        if code:
            raise SystemExit(code)  # react() exits with it

    react(lambda reactor: Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main(sys.argv[1:])

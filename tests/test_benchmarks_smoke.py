"""
The benchmark still runs: ``benchmarks/run.py --quick`` starts a router, its
peers, Crossbar's bridge, the ceilings and wampweb, drives each with ``wrk``,
prints a table with every target, and leaves no process behind.

It needs ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``) and is skipped, with
that reason, where it is missing. It checks that the benchmark works, not how
fast anything is: the numbers of a shared CI machine mean little.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("wrk") is None,
        reason="wrk is not installed (apt-get install wrk): the benchmark drives its load with it",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "run.py"


def _quick_targets() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("benchmark_run", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return tuple(module.QUICK_TARGETS)


def _ours() -> set[int]:
    """Processes the benchmark starts: Crossbar.io, its peers, wampweb, the ceilings."""
    found = set()
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        command = " ".join(process.info["cmdline"] or [])
        if any(word in command for word in ("crossbar", "wampweb", "benchmarks/")):
            found.add(process.pid)
    return found


def test_the_quick_benchmark_prints_every_target_and_stops_every_process() -> None:
    before = _ours()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    rows = {}
    for line in done.stdout.splitlines():
        cells = line.split()
        if len(cells) >= 7 and cells[1] in ("publish", "call"):
            rows[(cells[0], cells[1])] = cells
    for target in _quick_targets():
        for scenario in ("publish", "call"):
            cells = rows.get((target, scenario))
            assert cells is not None, f"no row for {target} {scenario} in:\n{done.stdout}"
            # Every acknowledged publish reached the subscriber, and nothing failed.
            assert cells[2] != "INVALID", done.stdout
            assert float(cells[2]) > 0
            assert cells[6] == "0", f"{target} {scenario} had errors:\n{done.stdout}"
    assert "Idle RSS" in done.stdout
    assert _ours() - before == set(), "processes left running after the benchmark"

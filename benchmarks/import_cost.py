"""
What a process pays in memory for what it imports, stack by stack.

Idle memory of a Twisted server is almost all import cost: the code objects,
classes and extension modules loaded at startup (a running wampweb adds under
1 MB to what its imports leave). This script starts a fresh interpreter per
stack, imports it, and reports the resident set size (median of ``--runs``),
the difference from plain ``twisted.web``, and the ratio to the Klein ceiling
of ``benchmarks/run.py`` -- all measured in the same run, by the same
interpreter, so the environment (which optional packages are installed) is
the same for every row.

It also names the optional heavy modules each stack ended up loading:
Autobahn imports every serializer and accelerator it finds installed.

Run::

    python benchmarks/import_cost.py                 # this environment
    python benchmarks/import_cost.py --python PATH   # another one, e.g. without Crossbar
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence

#: name -> the imports of that stack; every stack starts from the same Python.
STACKS: dict[str, str] = {
    "python": "pass",
    "twisted.web": "import argparse, json, twisted.internet.reactor, twisted.web.server",
    "klein ceiling": "import argparse, json, twisted.internet.reactor, twisted.web.server, klein",
    "autobahn Component": (
        "import argparse, json, twisted.internet.reactor, twisted.web.server, "
        "autobahn.twisted.component"
    ),
    "wampweb run": "import wampweb._cli",
}
BASELINE = "twisted.web"
CEILING = "klein ceiling"

#: Optional modules worth naming when a stack loads them (each costs ~1 MB or more).
HEAVY = ("numpy", "bjdata", "cffi", "pycparser", "cbor2", "ujson", "msgpack", "click", "klein")

_PROBE = """
import sys
{imports}
with open("/proc/self/status") as status:
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
import json
print(json.dumps({{"rss_kib": rss, "modules": len(sys.modules),
                  "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def measure(python: str, imports: str) -> dict[str, object]:
    """One fresh interpreter: its RSS once ``imports`` ran, and what it loaded."""
    # -P: the working folder (maybe this checkout) must not shadow what is installed.
    done = subprocess.run(
        [python, "-P", "-c", _PROBE.format(imports=imports, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{python} could not run {imports!r}:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def table(python: str, runs: int) -> list[str]:
    medians: dict[str, float] = {}
    details: dict[str, dict[str, object]] = {}
    for name, imports in STACKS.items():
        samples = [measure(python, imports) for _ in range(runs)]
        medians[name] = statistics.median(float(str(s["rss_kib"])) for s in samples) / 1024
        details[name] = samples[-1]
    out = [
        f"RSS after import, MiB, median of {runs} fresh interpreters: {python}",
        "",
        f"{'stack':<20}  {'RSS':>6}  {'vs ' + BASELINE:>15}  {'vs ceiling':>10}  "
        f"{'modules':>7}  optional heavy modules loaded",
        f"{'-' * 20}  {'-' * 6}  {'-' * 15}  {'-' * 10}  {'-' * 7}  {'-' * 30}",
    ]
    for name, rss in medians.items():
        heavy = details[name]["heavy"]
        assert isinstance(heavy, list)
        out.append(
            f"{name:<20}  {rss:6.1f}  {rss - medians[BASELINE]:+15.1f}  "
            f"{rss / medians[CEILING]:9.2f}x  {details[name]['modules']!s:>7}  "
            f"{', '.join(heavy) or '-'}"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per stack")
    options = parser.parse_args(argv)
    print("\n".join(table(options.python, max(1, options.runs))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""
``benchmarks/import_cost.py`` still runs and reports every stack. It checks that
the script works and that its rows say what they claim (the Klein ceiling loads
Klein, a wampweb process does not), not how large anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "import_cost.py"


def test_the_import_cost_table_has_every_stack() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = {
        line.split("  ")[0].strip(): line
        for line in done.stdout.splitlines()
        if line and not line.startswith(("RSS", "stack", "-"))
    }
    assert set(rows) == {
        "python",
        "twisted.web",
        "klein ceiling",
        "autobahn Component",
        "wampweb run",
    }
    assert "1.00x" in rows["klein ceiling"]
    assert rows["klein ceiling"].endswith("klein")
    assert "klein" not in rows["wampweb run"].split("  ")[-1]

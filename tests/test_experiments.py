"""The benchmark scripts under experiments/ import against the library as it is: a function one
names that was moved or renamed fails here, not in the hands of the next person to measure a
table. (Running them is each script's own business: they write their README's tables.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = sorted((Path(__file__).parents[1] / "experiments").glob("*/*.py"))
# Each script as `python experiments/<name>/<script>.py` starts, without running its main: its
# folder first on the path; in a process of its own (USB's benchmark stands in for packages).
IMPORT_EACH = """
import os, runpy, sys
for script in sys.argv[1:]:
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="imported")
"""


def test_every_benchmark_script_imports():
    assert len(SCRIPTS) > 20
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH, *map(str, SCRIPTS)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

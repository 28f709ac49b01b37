"""The long fuzz run (scripts/fuzz_sip.py), bounded; only with `-m slow` (make soak)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_fuzz_script_runs_clean() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "scripts" / "fuzz_sip.py"), "--seconds", "60"],
                          cwd=root, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

"""The CLI: commands run, user errors print a message (no traceback) and exit 2, docs list every command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("moon-features"))


def test_generate_then_validate(tmp_path):
    out = subprocess.run([CLI, "data", "generate", "--out", str(tmp_path / "s"), "--items", "60"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([CLI, "data", "validate", str(tmp_path / "s")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "valid. 60 items" in out.stdout


def test_user_error_is_a_message_and_exit_code_2(tmp_path):
    out = subprocess.run([CLI, "data", "validate", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "not a moon-features dataset" in out.stderr
    assert "Traceback" not in out.stderr


def test_docs_cli_reference_is_current():
    sys.path.insert(0, str(ROOT / "tools"))
    from gen_cli_docs import render

    assert (ROOT / "docs/cli.md").read_text() == render(), "run `python tools/gen_cli_docs.py`"

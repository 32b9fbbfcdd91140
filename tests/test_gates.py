"""scripts/test runs the gates (scripts/lint: ruff, then mypy) before pytest, and a finding fails it.

The negative cases run scripts/lint on a small copy of the layout (the real pyproject.toml, a
daemon/ of two files) with one finding planted, so they show the gate fails, not just that today's
code is clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLEAN_CORE = '"""A pure module."""\n\n\ndef double(n: int) -> int:\n    return 2 * n\n'
CLEAN_SHELL = '"""A shell module: not every function needs annotations here."""\n\n\ndef shell(x):\n    return x\n'


def tree(tmp_path: Path, core: str = CLEAN_CORE, shell: str = CLEAN_SHELL) -> Path:
    for folder in ("daemon/core", "daemon/flows", "tests", "bench", "scripts"):
        (tmp_path / folder).mkdir(parents=True)
    for package in ("daemon", "daemon/core", "daemon/flows"):
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "daemon/core/pure.py").write_text(core)
    (tmp_path / "daemon/flows/step.py").write_text(shell)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(ROOT / "scripts/lint", tmp_path / "scripts/lint")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    return tmp_path


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(root / "scripts/lint")], capture_output=True, text=True, timeout=300)


def test_scripts_test_runs_the_gates_before_pytest_and_stops_on_failure() -> None:
    script = (ROOT / "scripts/test").read_text()
    assert "set -euo pipefail" in script
    assert script.index("\nscripts/lint\n") < script.index("-m pytest")


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    done = lint(tree(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_ruff_finding_fails(tmp_path: Path) -> None:
    done = lint(tree(tmp_path, shell=CLEAN_SHELL + "import os\n"))
    assert done.returncode != 0 and "F401" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("core, shell, finding", [
    ('"""Pure."""\n\n\ndef double(n):\n    return 2 * n\n', CLEAN_SHELL, "no-untyped-def"),  # strict on core
    (CLEAN_CORE, '"""Shell."""\n\n\ndef shell(x: int) -> str:\n    return x\n', "return-value"),  # default elsewhere
])
def test_a_mypy_finding_fails(tmp_path: Path, core: str, shell: str, finding: str) -> None:
    done = lint(tree(tmp_path, core=core, shell=shell))
    assert done.returncode != 0 and finding in done.stdout, done.stdout + done.stderr

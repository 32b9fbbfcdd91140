"""The built wheel carries what an installed parting needs: every template and the command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_template_and_the_parting_command(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("parting-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "parting = daemon.cli:main" in archive.read(entry_points).decode()
    shipped = {n.removeprefix("daemon/_templates/") for n in names if n.startswith("daemon/_templates/")}
    assert shipped == {p.name for p in (ROOT / "templates").iterdir() if p.is_file()}
    assert "daemon/core/policy.py" in names and not any(n.startswith("tests/") for n in names)

"""The shipped units pass `systemd-analyze verify` and rate 2.0 or better in `security --offline`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[1] / "systemd"
INSTALLED_PATH = "/opt/parting/bin/parting"


def installed_copy(unit: str, tmp_path: Path) -> Path:
    """The unit as an installer would lay it down: ExecStart pointing at this install's parting."""
    parting = shutil.which("parting") or str(Path(__file__).resolve().parents[1] / ".venv/bin/parting")
    assert Path(parting).exists(), "parting must be installed for the unit's ExecStart to resolve"
    target = tmp_path / unit
    target.write_text((UNITS / unit).read_text().replace(INSTALLED_PATH, parting))
    return target


@pytest.mark.parametrize("unit", ["parting.service", "parting@.service"])
def test_unit_verifies_clean(unit: str, tmp_path: Path) -> None:
    path = installed_copy(unit, tmp_path)
    if unit.endswith("@.service"):
        instance = tmp_path / "parting@office.service"
        path.rename(instance)
        path = instance
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", ["parting.service", "parting@.service"])
def test_unit_security_exposure_at_most_2(unit: str, tmp_path: Path) -> None:
    path = installed_copy(unit, tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_units_keep_the_promised_lifecycle_settings() -> None:
    text = (UNITS / "parting.service").read_text()
    for setting in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "Restart=on-failure",
                    "StartLimitBurst=", "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes",
                    "StateDirectory=parting", "ConfigurationDirectory=parting",
                    "LoadCredential=imap-password:", "LoadCredential=smtp-password:",
                    "LoadCredential=token-key:"):
        assert setting in text, setting
    template = (UNITS / "parting@.service").read_text()
    assert "/etc/parting/%i.yaml" in template and "StateDirectory=parting/%i" in template

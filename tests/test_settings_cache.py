"""The settings cache (daemon/adapters/settings/load_cache.py): an unchanged config is read
without PyYAML, and what it gives is exactly what a full load gives.

Each test has its own cache folder (XDG_CACHE_HOME in tmp_path). A hit is told from a miss by
whether the YAML file was composed (full_load._compose), and in a fresh process by sys.modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from harness import write_config
from test_cli_reports import setup  # noqa: F401 - a fixture
from test_command_imports import REPORTS, imported

from daemon.adapters.settings import full_load, load, load_cache
from daemon.adapters.settings.load import SettingsError, load_settings
from daemon.adapters.settings.problems import key_lines
from daemon.adapters.settings.secret_files import load_secrets

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "tests" / "data" / "configs"
MINIMAL = (CONFIGS / "minimal.yaml").read_text()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "parting" / "settings"


@pytest.fixture
def composed(monkeypatch) -> list[str]:
    """The files load_settings read with PyYAML (a miss), in order."""
    reads: list[str] = []
    compose = full_load._compose
    monkeypatch.setattr(full_load, "_compose", lambda file: reads.append(Path(file).name) or compose(file))
    return reads


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def bench_config(folder: Path) -> Path:
    """The config the bench writes for its 200 clients (bench/fixture.py)."""
    from bench.corpus import make_clients

    server = SimpleNamespace(password="secret-imap-password", port=1143, user="office@example.com")
    return write_config(folder, server, None, clients=[client.as_config() for client in make_clients(200)])


ANCHORS = MINIMAL + """\
policy:
  ignored_after: 2 business days
  unresponsive: &usual {ignored_messages: 2, within: 40 days}
policies:
  patient:
    ignored_after: 6 business days
    unresponsive: {<<: *usual, or_silent_for: 50 days}
"""
UNICODE = MINIMAL.replace("name: Example Ltd", "name: \"Bäckerei Müller & Søn — 東京\"") \
    .replace("name: Alice Smith", "name: Zoë Ñúñez") + "# ein Kommentar: ünïcödé 🙂\n"
MICROSOFT365 = MINIMAL.replace("  imap: {host: imap.example.com, password_file: imap-password}\n"
                               "  smtp: {host: smtp.example.com}\n",
                               "  provider: microsoft365\n  auth: oauth2\n"
                               "  oauth: {client_id: 11111111-2222-3333-4444-555555555555, tenant: contoso.com}\n")
COMMENTS = "# a leading comment\n\n" + "\n".join(f"{line}   # note {n}" if line.strip() and ":" in line
                                                    and not line.rstrip().endswith(("|", ">")) else line
                                                    for n, line in enumerate(MINIMAL.splitlines())) + "\n"


def odd_configs(folder: Path) -> list[Path]:
    paths = [write(folder / "anchors", ANCHORS), write(folder / "unicode", UNICODE),
             write(folder / "comments", COMMENTS), write(folder / "microsoft365", MICROSOFT365),
             bench_config(folder / "bench")]
    for config in [REPO / "config.example.yaml", *sorted(CONFIGS.glob("*.yaml"))]:
        paths.append(write(folder / config.stem, config.read_text()))  # copies: tmp_path's cache, fresh
    return paths


def test_a_hit_gives_exactly_what_a_full_load_gives(tmp_path, cache, composed) -> None:
    checked = 0
    for path in odd_configs(tmp_path / "configs"):
        try:
            fresh = load_settings(path)
        except SettingsError:
            continue  # a sample of a mistake (the next test: never kept)
        assert composed[-1] == path.name  # read in full: a miss
        reads = len(composed)
        again = load_settings(path)
        assert len(composed) == reads, path  # a hit: not read with PyYAML
        assert again == fresh and again is not fresh, path
        assert key_lines(again) == key_lines(fresh), path  # problems found later point at the same lines
        checked += 1
    assert checked >= 7  # the example, the bench's, anchors, unicode, comments, oauth2 and the good samples
    oauth = load_settings(tmp_path / "configs" / "microsoft365" / "config.yaml").mailbox
    assert oauth.oauth is not None and oauth.preset_filled  # OAuthSettings and the preset's pairs came through
    patient = load_settings(tmp_path / "configs" / "anchors" / "config.yaml").policies["patient"]
    assert (str(patient.ignored_after), patient.unresponsive.ignored_messages, str(patient.unresponsive.within),
            str(patient.unresponsive.or_silent_for)) == ("6 business days", 2, "40 days", "50 days")


def test_a_one_byte_change_is_a_miss(tmp_path, cache, composed) -> None:
    path = write(tmp_path, MINIMAL)
    first = load_settings(path)
    path.write_text(MINIMAL.replace("Example Ltd", "Example Ltc"))  # same length: mtime and size alone could miss it
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    changed = load_settings(path)
    assert composed == ["config.yaml", "config.yaml"]
    assert (first.company, changed.company) == ("Example Ltd", "Example Ltc")


def test_a_hit_imports_no_yaml_nor_the_schema(tmp_path, cache) -> None:
    path = bench_config(tmp_path / "bench")
    code = ("import json, sys\nfrom daemon.adapters.settings.load import load_settings\n"
            f"settings = load_settings({str(path)!r})\n"
            "print(json.dumps([len(settings.clients), sorted(m for m in sys.modules if m == 'yaml' or "
            "m.startswith(('yaml.', 'daemon.adapters.settings.')))]))")

    def run() -> list:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "XDG_CACHE_HOME": str(cache.parent.parent)})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    clients, modules = run()  # a miss: read in full, written
    assert clients == 200 and "yaml" in modules
    clients, modules = run()
    assert clients == 200
    assert modules == ["daemon.adapters.settings.load", "daemon.adapters.settings.load_cache",
                       "daemon.adapters.settings.problems"]


def test_no_secret_is_kept_and_secrets_still_point_at_their_lines(tmp_path, cache) -> None:
    path = bench_config(tmp_path)  # imap-password holds "secret-imap-password", token-key the test key
    environ = {"TOKEN": "env-secret-value-0123456789abcdef-xyz"}
    load_settings(path, environ=environ)
    settings = load_settings(path, environ=environ)  # a hit
    (entry,) = cache.glob("*.json")
    kept = entry.read_bytes()
    for secret in ((tmp_path / "imap-password").read_text().strip(), (tmp_path / "token-key").read_text().strip(),
                   environ["TOKEN"]):
        assert secret.encode() not in kept
    assert load_secrets(settings, environ={}).imap_password == "secret-imap-password"
    (tmp_path / "token-key").write_text("short")
    with pytest.raises(SettingsError) as caught:
        load_secrets(settings, environ={})
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "token_key_file" in text)
    assert [problem.line for problem in caught.value.problems] == [line]  # the key's line, from the cache


def test_a_bad_config_is_never_kept_and_reports_the_same_both_times(tmp_path, cache, composed) -> None:
    path = write(tmp_path, (CONFIGS / "many_problems.yaml").read_text())
    reports = []
    for _ in range(2):
        with pytest.raises(SettingsError) as caught:
            load_settings(path)
        reports.append(caught.value.lines())
    assert reports[0] == reports[1] and composed == ["config.yaml", "config.yaml"]
    assert not list(cache.glob("*.json")) if cache.exists() else True


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "checksum kept, foreign class", "not json", "empty"])
def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path, cache, composed, damage) -> None:
    path = write(tmp_path, MINIMAL)
    fresh = load_settings(path)
    (entry,) = cache.glob("*.json")
    text = entry.read_text()
    body = text.partition("\n")[2]
    if damage == "truncated":
        entry.write_text(text[: len(text) // 2])
    elif damage == "corrupt":
        entry.write_text(text.replace("Example Ltd", "Evil Ltd"))
    elif damage == "checksum kept, foreign class":
        body = body.replace('"c":"Person"', '"c":"Popen"')
        entry.write_text(load_cache._digest(body.encode()) + "\n" + body)
    elif damage == "not json":
        entry.write_text(load_cache._digest(b"{oops") + "\n{oops")
    else:
        entry.write_text("")
    assert load_settings(path) == fresh
    assert composed == ["config.yaml", "config.yaml"]  # ignored: read in full, and written again
    assert load_settings(path) == fresh and composed == ["config.yaml", "config.yaml"]


def test_a_folder_that_cannot_be_written_only_means_no_cache(tmp_path, monkeypatch, composed) -> None:
    path = write(tmp_path, MINIMAL)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # parting/settings cannot be made under a file
    assert load_settings(path) == load_settings(path)
    assert composed == ["config.yaml", "config.yaml"]


@pytest.mark.parametrize("foreign", ["another owner", "writable by others"])
def test_a_folder_not_this_users_own_is_neither_read_nor_written(tmp_path, cache, composed, foreign) -> None:
    path = write(tmp_path, MINIMAL)
    fresh = load_settings(path)  # written while the folder was ours
    (entry,) = cache.glob("*.json")
    before = entry.read_bytes()
    if foreign == "another owner":
        if os.geteuid() == 0:
            os.chown(cache, 4242, -1)
        else:  # only root can give a folder away: a folder of another user is one we do not own
            cache.rename(cache.with_name("mine"))
            cache.symlink_to("/tmp")  # /tmp: root's, and writable by everyone
    else:
        cache.chmod(0o777)
    assert load_settings(path) == fresh
    assert composed == ["config.yaml", "config.yaml"]  # not read
    assert entry.read_bytes() == before if entry.exists() else True  # nor written


def test_what_the_key_holds_changes_the_answer(tmp_path, cache, composed, monkeypatch) -> None:
    """Inputs beside the file's bytes: the credentials folder, the folder a relative path resolves to."""
    text = MINIMAL  # token_key_file: token-key, relative: in $CREDENTIALS_DIRECTORY when that is set
    path = write(tmp_path / "one", text)
    first = load_settings(path, environ={}).review.token_key_file
    other = load_settings(path, environ={"CREDENTIALS_DIRECTORY": "/run/credentials/x"}).review.token_key_file
    assert first == str(tmp_path / "one" / "token-key") and other == "/run/credentials/x/token-key"
    write(tmp_path / "two", text)
    monkeypatch.chdir(tmp_path / "one")
    here = load_settings("config.yaml", environ={}).database
    monkeypatch.chdir(tmp_path / "two")
    there = load_settings("config.yaml", environ={}).database
    assert Path(here).parent == tmp_path / "one" and Path(there).parent == tmp_path / "two"
    assert len(composed) == 4  # each a miss


def test_a_changed_file_the_checks_consulted_is_a_miss(tmp_path, cache, composed, monkeypatch) -> None:
    consulted = tmp_path / "zone-file"
    consulted.write_text("v1")
    depends = load_cache._depends
    monkeypatch.setattr(load_cache, "_depends", lambda settings: [*depends(settings), [str(consulted),
                                                                                      load_cache._stat(str(consulted))]])
    path = write(tmp_path, MINIMAL)
    load_settings(path)
    load_settings(path)
    assert composed == ["config.yaml"]
    consulted.write_text("v2, longer")
    load_settings(path)
    assert composed == ["config.yaml", "config.yaml"]


def test_the_key_covers_every_module_of_ours_a_full_load_imports(tmp_path) -> None:
    """The code part of the key (load_cache._CODE_FOLDERS) holds every daemon module a miss imports."""
    path = write(tmp_path, (REPO / "config.example.yaml").read_text())
    code = ("import json, sys\nfrom daemon.adapters.settings.load import load_settings\n"
            f"load_settings({str(path)!r})\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('daemon'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert done.returncode == 0, done.stderr
    folders = {"/".join(name.split(".")[1:-1]) for name in json.loads(done.stdout) if name != "daemon"}
    packages = {name.replace(".", "/")[len("daemon/"):] for name in json.loads(done.stdout) if "." in name}
    assert folders - packages - set(load_cache._CODE_FOLDERS) == set()
    assert "core/oauthsettings" not in packages  # (a password mailbox)


def test_simulate_on_a_hit_reads_the_main_file_for_its_policy_nodes(tmp_path, cache, composed) -> None:
    path = write(tmp_path, ANCHORS)
    load_settings(path)
    base = load_settings(path)  # a hit: no policy nodes kept
    other = write(tmp_path, "policies:\n  patient: {ignored_after: 7 business days}\n", "other.yaml")
    compared = load.load_policy_override(other, base).policies["patient"]
    assert str(compared.ignored_after) == "7 business days"
    assert composed == ["config.yaml", "other.yaml", "config.yaml"]


def test_the_documented_promises(tmp_path, cache, composed) -> None:
    """docs/architecture.md: where the cache is, what invalidates it, that deleting it is safe."""
    docs = (REPO / "docs" / "architecture.md").read_text()
    assert "~/.cache/parting/settings" in docs and "$XDG_CACHE_HOME" in docs
    path = write(tmp_path, MINIMAL)
    fresh = load_settings(path)
    assert cache == Path(os.environ["XDG_CACHE_HOME"]) / "parting" / "settings" and list(cache.glob("*.json"))
    shutil.rmtree(cache)  # safe to delete: the next load reads the file and writes it again
    assert load_settings(path) == fresh and list(cache.glob("*.json"))
    assert composed == ["config.yaml", "config.yaml"]


@pytest.mark.parametrize("changed", ["home folder", "python version", "our code", "the path as given"])
def test_each_input_beside_the_bytes_is_in_the_key(tmp_path, cache, composed, monkeypatch, changed) -> None:
    code = tmp_path / "daemon"  # a copy of our modules' files, whose identity the key takes
    for sub in load_cache._CODE_FOLDERS:
        (code / sub).mkdir(parents=True, exist_ok=True)
        for module in (load_cache._CODE / sub).glob("*.py"):
            shutil.copy2(module, code / sub / module.name)
    monkeypatch.setattr(load_cache, "_CODE", code)
    path = write(tmp_path, MINIMAL)
    fresh = load_settings(path)
    load_settings(path)
    assert composed == ["config.yaml"]
    if changed == "home folder":
        monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))  # `~` in a path would mean another folder
    elif changed == "python version":
        monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    elif changed == "our code":
        module = code / "adapters" / "settings" / "rules.py"  # edited in place, same size
        os.utime(module, ns=(module.stat().st_atime_ns, module.stat().st_mtime_ns + 1))
    else:
        monkeypatch.chdir(tmp_path)
        path = Path("config.yaml")
    assert load_settings(path) == fresh or changed == "the path as given"
    assert composed == ["config.yaml", "config.yaml"]


def test_the_default_folder_is_in_the_users_own_cache(monkeypatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert load_cache.folder() == Path.home() / ".cache" / "parting" / "settings"


def test_without_a_home_folder_nothing_is_written_where_the_command_runs(tmp_path, monkeypatch, composed) -> None:
    path = write(tmp_path / "config", MINIMAL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative-cache")  # XDG: a relative path is ignored
    monkeypatch.setenv("HOME", "relative-home")
    assert load_cache.folder() is None
    assert load_settings(path) == load_settings(path) and composed == ["config.yaml", "config.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]


@pytest.mark.parametrize("command", REPORTS)
def test_a_report_on_an_unchanged_config_imports_no_yaml(setup, cache, command) -> None:  # noqa: F811
    """The typed commands as people run them (a new process each): the second finds the config kept."""
    first = imported(setup, *command)
    assert "yaml" in first  # a miss: read in full, and kept
    again = imported(setup, *command)
    assert not {"yaml", "daemon.adapters.settings.schema", "daemon.adapters.settings.rules",
                "daemon.adapters.settings.build", "daemon.adapters.settings.kinds"} & again  # kinds: a mistake's hint
    if command[0] in ("drafts", "outbox", "deadlines"):  # no time zones nor holiday codes: nothing is checked
        assert not {"zoneinfo", "daemon.adapters.settings.holiday_codes", "daemon.core.holiday_tables"} & again


def test_an_entry_depends_on_the_files_the_checks_read(tmp_path, cache) -> None:
    """PyYAML's modules, the holidays registry and the configured country's module, each zone's file."""
    path = bench_config(tmp_path)  # GB, England; Europe/London and the clients' zones
    settings = load_settings(path)
    (entry,) = cache.glob("*.json")
    depends = [kept[0] for kept in json.loads(entry.read_bytes().partition(b"\n")[2])["depends"]]
    names = {"/".join(Path(p).parts[-2:]) for p in depends}
    assert {"yaml/composer.py", "holidays/registry.py", "countries/united_kingdom.py"} <= names
    zones = {settings.working_hours.timezone} | {c.timezone for c in settings.clients if c.timezone}
    assert len(zones) > 1 and all(any(p.endswith("zoneinfo/" + zone) for p in depends) for zone in zones)


@pytest.mark.parametrize("broken", ["_depends", "_code_identity", "_encode"])
def test_a_cache_that_breaks_never_fails_a_load(tmp_path, cache, composed, monkeypatch, broken) -> None:
    path = write(tmp_path, MINIMAL)
    fresh = load_settings(path)

    def fail(*args: object) -> None:
        raise RuntimeError("the cache broke")

    monkeypatch.setattr(load_cache, broken, fail)
    for entry in cache.glob("*.json"):
        entry.unlink()
    assert load_settings(path) == fresh and load_settings(path) == fresh
    assert composed == ["config.yaml"] * 3 and not list(cache.glob("*.json"))


def test_no_folder_is_made_inside_another_users_folder(tmp_path, monkeypatch, composed) -> None:
    """`sudo` keeping a person's $HOME: root must not leave folders there that the person cannot use."""
    path = write(tmp_path / "config", MINIMAL)
    theirs = tmp_path / "home-of-someone-else"
    theirs.mkdir()
    if os.geteuid() == 0:
        os.chown(theirs, 4242, 4242)
    else:
        theirs = Path("/")  # not ours either, for a user who is not root
    monkeypatch.setenv("XDG_CACHE_HOME", str(theirs / ".cache"))
    assert load_settings(path) == load_settings(path) and composed == ["config.yaml", "config.yaml"]
    assert not (theirs / ".cache").exists()

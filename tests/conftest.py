"""Fixtures for the real mail servers (see servers.py) and the import path they need.

tests/ has no __init__.py: pytest's default import mode puts tests/ on sys.path, and we add it
(and the repo root) here as well so `from servers import ...` and `from tests.servers import ...`
both work under any import mode. Prefer `from servers import ...`.
"""
from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

_TESTS = Path(__file__).resolve().parent
for _path in (str(_TESTS), str(_TESTS.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import pytest  # noqa: E402
from fake_idp import FakeIdp  # noqa: E402
from servers import DovecotServer, SmtpSink, TlsFiles, scratch_dir  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def settings_cache_of_this_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The settings cache (adapters/settings/load_cache.py) in a folder of this run, inherited by
    the processes tests start: a run neither reads the user's ~/.cache nor leaves entries there."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return TlsFiles.create(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    yield from _running_dovecot(tls=None)


@pytest.fixture
def dovecot_tls(tls_files: TlsFiles) -> Iterator[DovecotServer]:
    yield from _running_dovecot(tls=tls_files)


@pytest.fixture
def dovecot_without_sent() -> Iterator[DovecotServer]:
    """A Dovecot with no folder marked \\Sent (the doctor's and the Sent-folder tests' case)."""
    yield from _running_dovecot(tls=None, sent_folder=None)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    """A fake OAuth2 identity provider on 127.0.0.1 (see fake_idp.py for why not oidc-provider)."""
    server = FakeIdp().start()
    yield server
    server.stop()


@pytest.fixture
def dovecot_oauth(idp: FakeIdp) -> Iterator[DovecotServer]:
    """A Dovecot whose oauth2 passdb asks `idp` (introspection) about XOAUTH2/OAUTHBEARER tokens."""
    yield from _running_dovecot(tls=None, oauth_introspection_url=f"{idp.url}/introspect")


def _running_dovecot(tls: TlsFiles | None, sent_folder: str | None = "Sent",
                     oauth_introspection_url: str | None = None) -> Iterator[DovecotServer]:
    workdir = scratch_dir("parting-dovecot-")
    server = DovecotServer(workdir, tls=tls, sent_folder=sent_folder, oauth_introspection_url=oauth_introspection_url)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

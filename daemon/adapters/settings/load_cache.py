"""The settings a config file gave, kept on disk, so an unchanged config is read without PyYAML.

Why: every command loads the whole configuration, and importing PyYAML, the schema and its
kinds, composing the file and walking it took most of a report's start (issue 21). What it
builds is a function of the file's bytes and of a few inputs beside them, so it is kept per
user, keyed by all of them, and rebuilt whenever one differs.

Rules of this module:
- Exact or nothing. An entry is used only when every input is as it was when it was written:
  the config file's bytes (BLAKE2b, never its time alone), the path as given and the folder it
  resolves to, $CREDENTIALS_DIRECTORY, the home folder (`~` in paths), the Python (version,
  interpreter and environment), the YAML parser asked for, parting's own code that reads
  settings (size and modification time of each module of daemon/core and
  daemon/adapters/settings, as Python's own .pyc check), and the files the checks consulted
  (PyYAML's and the holidays package's files and the configured country's module, the
  time-zone file of each zone named).
  Anything else: a miss, and the load runs in full.
- Only a configuration that loaded without a problem is kept, so every error is found and worded
  by the full load, exactly as before. Secrets are never kept: Settings holds only the paths and
  variable names of secrets (secret_files.py reads them later, outside this cache).
- Plain JSON, never pickle: a dataclass is rebuilt only from the names in _CLASSES. Each file
  starts with the BLAKE2b digest of the rest; a truncated, corrupt, foreign or older file is a
  miss and is rewritten, never an error.
- Where: $XDG_CACHE_HOME/parting/settings (default ~/.cache/parting/settings), the user's own,
  never the state folder: the database path is inside the config, and people run reports as
  themselves, where the daemon's state folder is not theirs to write. A folder or file not
  owned by this user, or writable by others, is not used. Writes are atomic (temporary file
  and rename), best effort (a folder that cannot be written only means no cache), and at most
  _KEEP entries are kept. Deleting the folder is always safe.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

import daemon
from daemon.core import model
from daemon.core.digest import blake2b  # not hashlib's: it loads OpenSSL, ~3 ms of a listing's start
from daemon.core.model import Settings

FORMAT = 1
_KEEP = 64  # entries kept: one per config path (and environment) a user loads
# The dataclasses a Settings is made of: the only classes an entry can name.
_CLASSES = frozenset({"Settings", "MailboxSettings", "ImapSettings", "SmtpSettings", "OAuthSettings", "Person",
                      "Client", "WorkingHours", "HolidayCalendar", "Policy", "Unresponsive", "LadderStep",
                      "ReviewSettings", "FollowupSettings", "Duration"})
_DISTRIBUTIONS = {"yaml": "[Pp][Yy][Yy][Aa][Mm][Ll]", "holidays": "holidays", "tzdata": "tzdata"}
_CODE = Path(daemon.__file__).parent
_CODE_FOLDERS = ("", "core", "adapters", "adapters/settings")  # every module a load imports of ours


def folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder of this user's entries; None without a home folder (a relative path would
    put them wherever the command runs; XDG says to ignore a relative $XDG_CACHE_HOME)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "parting" / "settings" if os.path.isabs(base) else None


class Lookup:
    """What a lookup found out, so a miss can write its entry without working it out again.
    (A plain class: creating a dataclass costs a report about a millisecond.)"""

    def __init__(self, entry: Path | None, key: dict[str, Any], digest: str) -> None:
        self.entry = entry  # None: no usable cache folder
        self.key = key
        self.digest = digest  # of the config file's bytes
        self.settings: Settings | None = None  # set on a hit
        self.lines: dict[str, int] | None = None


def lookup(file: str, environ: Mapping[str, str], parser: str) -> Lookup | None:
    """The Settings kept for this file as it is now, or what to write them under (None: the file
    cannot be read; the full load reports why)."""
    try:
        data = Path(file).read_bytes()
        key = {"format": FORMAT, "source": file, "folder": str(Path(file).absolute().parent),
               "credentials": environ.get("CREDENTIALS_DIRECTORY"), "home": os.path.expanduser("~"),
               "python": [sys.version, sys.executable, sys.prefix], "parser": parser,
               "code": [str(_CODE), _code_identity()]}
        name = _digest(json.dumps(key, sort_keys=True).encode())[:40]
        found = Lookup(None, key, _digest(data))
        home = folder()
        where = None if home is None else _usable_folder(home)
    except Exception:  # (OSError, mostly) the full load reads the file and reports what is wrong
        return None
    if where is None:
        return found
    found.entry = where / f"{name}.json"
    try:
        stored = _read_entry(found.entry)
        if stored is not None and stored["key"] == key and stored["digest"] == found.digest \
                and all(_stat(path) == kept for path, kept in stored["depends"]):
            lines = stored["lines"]  # key path -> line: JSON's own str and int (the entry's checksum held)
            if not isinstance(lines, dict):
                raise ValueError("lines")
            found.settings, found.lines = _decode(stored["settings"]), lines
    except Exception:  # a cache never decides: anything odd in an entry is a miss
        found.settings = found.lines = None
    return found


def save(found: Lookup, file: str, settings: Settings, lines: Mapping[str, int]) -> bool:
    """Keep `settings`, loaded from `file` in full, for the next load; True when written. Best
    effort: a folder that cannot be written, or a file changed since it was looked up, writes nothing."""
    if found.entry is None:
        return False
    try:
        if _digest(Path(file).read_bytes()) != found.digest:
            return False  # changed while it was read: what was built may not be what was hashed
        body = json.dumps({"key": found.key, "digest": found.digest, "depends": _depends(settings),
                           "settings": _encode(settings), "lines": dict(lines)},
                          ensure_ascii=False, separators=(",", ":")).encode()
    except Exception:  # (OSError, or a value _encode does not know) a cache never fails a load
        return False
    import tempfile  # here: a hit writes nothing

    try:
        if not _ours_to_create(found.entry.parent):
            return False
        found.entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _usable_folder(found.entry.parent) is None:
            return False
        handle, temporary = tempfile.mkstemp(prefix=".settings-", dir=found.entry.parent)  # mode 0600
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(_digest(body).encode() + b"\n" + body)
            os.replace(temporary, found.entry)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(found.entry.parent)
    except OSError:
        return False
    return True


def _usable_folder(where: Path) -> Path | None:
    """`where` when it is this user's own and no one else may write in it; else None."""
    try:
        status = where.stat()
    except OSError:
        return where  # not there yet: a save creates it (mode 0700)
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o022:
        return None
    return where


def _ours_to_create(where: Path) -> bool:
    """Whether the nearest folder of `where` that exists is this user's: `sudo` keeping a
    person's $HOME must not leave root's folders in it, which that person could not use."""
    for ancestor in (where, *where.parents):
        try:
            return ancestor.stat().st_uid == os.geteuid()
        except FileNotFoundError:
            continue
    return False


def _read_entry(entry: Path) -> dict[str, Any] | None:
    try:
        with open(entry, "rb") as handle:
            if os.fstat(handle.fileno()).st_uid != os.geteuid():
                return None
            raw = handle.read()
    except OSError:
        return None
    check, _, body = raw.partition(b"\n")
    if _digest(body).encode() != check:
        return None
    stored = json.loads(body)
    return stored if isinstance(stored, dict) else None


def _prune(where: Path) -> None:
    def written(path: Path) -> int:
        found = _stat(str(path))
        return found[1] if found else 0

    for old in sorted(where.glob("*.json"), key=written, reverse=True)[_KEEP:]:
        old.unlink(missing_ok=True)


def _stat(path: str) -> list[int] | None:
    """What a file's identity is taken to be: its size and modification time (None: absent)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _digest(data: bytes) -> str:
    return blake2b(data).hexdigest()


def _code_identity() -> str:
    digest = blake2b()
    for sub in _CODE_FOLDERS:
        try:
            with os.scandir(_CODE / sub) as entries:
                found = sorted((entry.name, entry.stat()) for entry in entries if entry.name.endswith(".py"))
        except OSError:
            continue
        for name, status in found:
            digest.update(f"{sub}/{name}:{status.st_size}:{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _depends(settings: Settings) -> list[list[Any]]:
    """The files outside the key that a full load consulted, with their identity now: PyYAML's
    modules (the composer), the holidays package's (country codes) and the configured country's
    module (its subdivisions), and each zone's file."""
    paths: list[str] = []
    for package in ("yaml", "holidays"):
        paths += _package_files(package)
    country = settings.working_hours.holidays.country
    if country:  # its module, where holiday_codes.py read the subdivisions
        from daemon.adapters.settings import holiday_codes

        module = (holiday_codes.country_modules() or {}).get(country)
        holidays_folder = holiday_codes._package_folder()
        if module and holidays_folder:
            paths.append(str(holidays_folder / "countries" / f"{module[0]}.py"))
    zones = {settings.working_hours.timezone} | {c.timezone for c in settings.clients if c.timezone}
    from zoneinfo import TZPATH  # (imported by the full load's checks)

    for zone in sorted(zones):
        candidates = [os.path.join(base, zone) for base in TZPATH]
        paths += candidates
        if not any(os.path.isfile(path) for path in candidates):
            paths += _package_files("tzdata")  # zoneinfo's fallback: the tzdata package
    return [[path, _stat(path)] for path in paths]


def _package_files(name: str) -> list[str]:
    """A package's own files and its distribution's RECORD (rewritten by every install)."""
    from importlib.util import find_spec

    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return []
    top = next(iter(spec.submodule_search_locations))
    with os.scandir(top) as entries:
        files = sorted(entry.path for entry in entries if entry.is_file())
    records = sorted(str(path) for path in Path(top).parent.glob(f"{_DISTRIBUTIONS[name]}-*.dist-info/RECORD"))
    return files + records


# --------------------------------------------------------------------------------------------
# Settings as plain JSON and back.


def _encode(value: Any) -> Any:
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is tuple:
        return {"t": [_encode(item) for item in value]}
    if kind is list:
        return [_encode(item) for item in value]
    if kind is dict:
        return {"d": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if kind is time:
        return {"time": value.isoformat()}
    if kind is date:
        return {"date": value.isoformat()}
    if is_dataclass(value) and kind.__name__ in _CLASSES and kind is getattr(model, kind.__name__):
        return {"c": kind.__name__, "f": {f.name: _encode(getattr(value, f.name)) for f in fields(value)}}
    raise TypeError(f"not kept in the settings cache: {kind.__name__}")


def _decode(value: Any) -> Any:
    if type(value) is list:
        return [_decode(item) for item in value]
    if type(value) is not dict:
        return value
    if "t" in value:
        return tuple(_decode(item) for item in value["t"])
    if "d" in value:
        return {_decode(k): _decode(v) for k, v in value["d"]}
    if "time" in value:
        return time.fromisoformat(value["time"])
    if "date" in value:
        return date.fromisoformat(value["date"])
    name = value["c"]
    if name not in _CLASSES:
        raise ValueError(f"unknown class {name!r}")
    cls = getattr(model, name)  # core/model.py imports OAuthSettings only when asked for it
    return cls(**{field: _decode(item) for field, item in value["f"].items()})

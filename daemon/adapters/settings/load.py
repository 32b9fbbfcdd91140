"""Settings: the YAML file and the secrets it points to, turned into validated model.Settings.

Rules of this module:
- An unchanged config is answered from the settings cache (load_cache.py), without PyYAML;
  anything else is read in full by full_load.py, imported inside the function that needs it:
  a report on an unchanged config never imports PyYAML, the schema or its checks.
- The public names of reading a config are imported from here. Those of full_load.py are
  small functions that import it when called, never names bound at import time.
- Secrets are read by secret_files.py (`load_secrets`, `Secrets`), imported from there; their
  values never appear in a message, a repr or a log line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from daemon.adapters.settings import load_cache
from daemon.adapters.settings.problems import Problem, SettingsError, key_lines, remember_key_lines
from daemon.core.model import Settings

__all__ = ["Problem", "SettingsError", "load_settings", "load_policy_override", "config_key_paths", "dump_config"]


def load_settings(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and build the settings; raise SettingsError listing every problem.

    An unchanged config is answered from the cache (load_cache.py), without PyYAML; otherwise
    it is read in full and, when nothing was wrong, kept for the next load."""
    file = str(path)
    environ = os.environ if environ is None else environ
    found = load_cache.lookup(file, environ, _parser())
    if found is not None and found.settings is not None:
        remember_key_lines(found.settings, found.lines or {})
        return found.settings
    from daemon.adapters.settings import full_load  # here: PyYAML alone is a sixth of a report's start

    settings = full_load.read_settings(file, environ)
    if found is not None:
        load_cache.save(found, file, settings, key_lines(settings))
    return settings


def _parser() -> str:
    """The YAML parser a full load would use, for the cache's key, without importing it: the
    default one unless full_load.py was imported and told otherwise (a test may choose)."""
    full_load = sys.modules.get("daemon.adapters.settings.full_load")
    return "default" if full_load is None else full_load.parser()


def load_policy_override(path: str | Path, base: Settings) -> Settings:
    """`base` judged by the policies of another file, for `parting simulate` (full_load.py)."""
    from daemon.adapters.settings import full_load

    return full_load.load_policy_override(path, base)


def config_key_paths(path: str | Path) -> list[str]:
    """Every key written in a config file, as a canonical path (`clients[].owner`, `policy.ladder[].action`)."""
    from daemon.adapters.settings import full_load

    return full_load.config_key_paths(path)


def dump_config(tree: Mapping[str, object]) -> str:
    """A configuration as YAML text, keys in the order given (for generated configs: the demo's)."""
    from daemon.adapters.settings import full_load

    return full_load.dump_config(tree)

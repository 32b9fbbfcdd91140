"""Building model.Settings from the checked settings tree (only when nothing was wrong).

Rules of this module:
- Its input is the tree settings.py read and checked: plain values, every problem already
  reported. Nothing here can fail on the user's input, and nothing here reads YAML.
- Relative paths are resolved against the config's folder; secret paths against systemd's
  $CREDENTIALS_DIRECTORY when it is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.adapters.settings.providers import MS_CLIENT_CREDENTIALS_SCOPES, expand_tenant
from daemon.adapters.settings.rules import merge_policy
from daemon.core.model import (
    WEEKDAYS,
    Client,
    FollowupSettings,
    HolidayCalendar,
    ImapSettings,
    LadderStep,
    MailboxSettings,
    Person,
    Policy,
    ReviewSettings,
    Settings,
    SmtpSettings,
    Unresponsive,
    WorkingHours,
)

if TYPE_CHECKING:
    from daemon.core.oauthsettings import OAuthSettings

_PORTS = {"imap": {"tls": 993, "starttls": 143, "none": 143}, "smtp": {"tls": 465, "starttls": 587, "none": 25}}


def build_settings(tree: dict, file: str, config_dir: Path, environ: Mapping[str, str],
                   preset_filled: tuple[tuple[str, str], ...] = ()) -> Settings:
    """model.Settings from a checked tree read from `file` (in `config_dir`)."""
    credentials = environ.get("CREDENTIALS_DIRECTORY")

    def path(value: str | None, base: Path = config_dir) -> str | None:
        if value is None:
            return None
        written = Path(value).expanduser()
        return str(written if written.is_absolute() else base / written)

    def secret_path(value: str | None) -> str | None:
        # systemd LoadCredential= puts credentials in $CREDENTIALS_DIRECTORY, named as written.
        return path(value, Path(credentials) if credentials else config_dir)

    mailbox = tree["mailbox"]
    imap, smtp = mailbox["imap"], mailbox["smtp"]
    main_address, *aliases = mailbox["address"]
    hours = tree["working_hours"]
    calendar = hours["holidays"]
    review = tree["review"]
    database = path(tree["state"]["database"]) or ""  # required: the schema reported it if missing
    oauth = (_oauth(mailbox, Path(database or config_dir).parent, secret_path, preset_filled)
             if mailbox["auth"] == "oauth2" else None)
    return Settings(
        source=file,
        company=tree["company"]["name"],
        mailbox=MailboxSettings(
            address=main_address,
            aliases=tuple(aliases),
            imap=ImapSettings(
                host=imap["host"], port=imap["port"] or _PORTS["imap"][imap["security"]],
                security=imap["security"], username=imap["username"] or main_address,
                password_file=secret_path(imap["password_file"]), password_env=imap["password_env"],
                ca_file=secret_path(imap["ca_file"]), inbox=imap["folders"]["inbox"],
                sent=imap["folders"]["sent"],
                lookback_days=math.ceil(imap["lookback"].as_timedelta().total_seconds() / 86400),
                connect_timeout=imap["timeouts"]["connect"].as_timedelta().total_seconds(),
                read_timeout=imap["timeouts"]["read"].as_timedelta().total_seconds(),
                idle_renew=imap["idle_renew"],
            ),
            smtp=SmtpSettings(
                host=smtp["host"], port=smtp["port"] or _PORTS["smtp"][smtp["security"]],
                security=smtp["security"],
                username=smtp["username"] or (main_address if mailbox["auth"] == "oauth2" else None),
                password_file=secret_path(smtp["password_file"]), password_env=smtp["password_env"],
                ca_file=secret_path(smtp["ca_file"]),
                connect_timeout=smtp["timeouts"]["connect"].as_timedelta().total_seconds(),
                data_timeout=smtp["timeouts"]["data"].as_timedelta().total_seconds(),
                max_per_hour=smtp["max_per_hour"], max_attempts=smtp["max_attempts"],
            ),
            append_to_sent=mailbox["append_to_sent"],
            provider=mailbox["provider"], auth=mailbox["auth"], oauth=oauth, preset_filled=preset_filled,
        ),
        database=database,
        people=tuple(Person(p["id"], p["name"], p["email"]) for p in tree["people"]),
        clients=tuple(_client(c) for c in tree["clients"]),
        working_hours=WorkingHours(
            timezone=hours["timezone"],
            days=tuple(sorted({WEEKDAYS.index(day) for day in hours["days"]})),
            start=time.fromisoformat(hours["start"]),
            end=time.fromisoformat(hours["end"]),
            holidays=HolidayCalendar(calendar["country"], calendar["subdivision"], tuple(calendar["extra"])),
        ),
        policy=build_policy("default", tree["policy"]),
        policies={name: build_policy(name, merge_policy(tree["policy"], partial))
                  for name, partial in tree["policies"].items()},
        review=ReviewSettings(
            reviewers=tuple(dict.fromkeys(review["reviewers"])),
            approvals_required=review["approvals_required"], token_ttl=review["token_ttl"],
            authserv_id=review["authserv_id"] or "",
            require_authentication=review["require_authentication"], send_delay=review["send_delay"],
            token_key_file=secret_path(review["token_key_file"]), token_key_env=review["token_key_env"],
            remind_after=review["remind_after"],
        ),
        followup=FollowupSettings(**tree["followup"]),
        mode=tree["mode"],
        dry_run_dir=path(tree["dry_run"]["folder"]),
        templates_dir=path(tree["templates"]["dir"]),
    )


def _oauth(mailbox: dict[str, Any], state_dir: Path, secret_path: Callable[[str | None], str | None],
           preset_filled: tuple[tuple[str, str], ...]) -> OAuthSettings:
    written = mailbox["oauth"]
    tenant = written["tenant"]
    # Microsoft's app-only access asks for the app's permissions (<resource>/.default), not the
    # delegated scopes the preset fills for a person's sign-in.
    app_only = (mailbox["provider"] == "microsoft365" and written["flow"] == "client_credentials"
                and ("mailbox.oauth.scopes", ", ".join(written["scopes"] or ())) in preset_filled)
    token_file = Path(written["token_file"]).expanduser()
    from daemon.core.oauthsettings import OAuthSettings  # here: a password mailbox never makes one

    return OAuthSettings(
        client_id=written["client_id"], tenant=tenant, flow=written["flow"] or "device",
        token_url=expand_tenant(written["token_url"], tenant) or "",
        authorize_url=expand_tenant(written["authorize_url"], tenant),
        device_url=expand_tenant(written["device_url"], tenant),
        revoke_url=expand_tenant(written["revoke_url"], tenant),
        scopes=tuple(written["scopes"] or ()) if not app_only else MS_CLIENT_CREDENTIALS_SCOPES,
        token_file=str(token_file if token_file.is_absolute() else state_dir / token_file),
        client_secret_file=secret_path(written["client_secret_file"]),
        client_secret_env=written["client_secret_env"],
        client_certificate_file=secret_path(written["client_certificate_file"]),
        client_certificate_env=written["client_certificate_env"],
        client_private_key_file=secret_path(written["client_private_key_file"]),
        client_private_key_env=written["client_private_key_env"],
    )


def _client(client: dict) -> Client:
    return Client(
        id=client["id"], name=client["name"], contact=client["contact"],
        addresses=tuple(client["addresses"]), domains=tuple(client["domains"]), owner=client["owner"],
        phone=client["phone"], timezone=client["timezone"],
        policy=None if client["policy"] in (None, "default") else client["policy"], exempt=client["exempt"],
    )


def build_policy(name: str, policy: dict) -> Policy:
    """model.Policy from a checked (and, for a named policy, merged) policy tree."""
    return Policy(
        name=name,
        expects_reply=policy["expects_reply"],
        ignored_after=policy["ignored_after"],
        unresponsive=Unresponsive(**policy["unresponsive"]),
        ladder=tuple(LadderStep(step["after_ignored"], step["action"]) for step in policy["ladder"]),
        reply_answers_all=policy["reply_answers"] == "client",
        send_nudges=policy["send_nudges"],
        request_tag=policy["request_tag"],
    )

"""Rules across configuration keys, run on the converted tree after every key was read on its own.

Rules of this module:
- A value that failed its own check is BAD and already reported: rules skip it quietly, so
  one mistake gives one problem.
- Problems go through `report(key_path, message, at=...)`; this module never raises and
  knows nothing of files or lines.
- No YAML here: the tree holds plain values built by the kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.adapters.settings.kinds import did_you_mean, shown, subdivision_spelling
from daemon.core.headervalues import HeaderInjection, check_header_value
from daemon.core.hosts import is_loopback
from daemon.core.tokenshape import MAX_MAILBOX_LOCAL  # not core/review.py: see there

BAD = object()  # a value that failed its own check; its problem is already reported
Report = Callable[..., None]  # report(key_path, message, at=key_path_for_the_line)


def ok(*values: object) -> bool:
    return all(value is not BAD for value in values)


def cross_check(tree: dict, written: set[str], report: Report) -> None:
    """Rules across keys. `written`: key paths present in the file; a missing section was already
    reported, so rules about its defaults stay quiet."""
    if tree["mode"] == "dry_run" and tree["dry_run"]["folder"] is None:
        report("dry_run.folder", "required when mode is dry_run: the folder outgoing mail is written to",
               at="mode")
    our_addresses = _check_mailbox(tree["mailbox"], written, report)
    people = _check_people(tree["people"], report)
    _check_working_hours(tree["working_hours"], report)
    _check_policy(tree["policy"], "policy", None, report)
    for name, partial in tree["policies"].items():
        _check_policy(merge_policy(tree["policy"], partial), f"policies.{name}", partial, report)
    staff_emails = [p["email"] for p in tree["people"] if p is not BAD and ok(p["email"])]
    _check_clients(tree["clients"], people, set(tree["policies"]), {*our_addresses, *staff_emails}, report)
    if "review" in written:
        _check_review(tree["review"], tree["clients"], people, report, tree["mailbox"]["provider"])
    _check_header_texts(tree, report)


def _check_header_texts(tree: dict, report: Report) -> None:
    """Names end up in From, To and Subject headers: one with a line break (or an encoded one,
    =?utf-8?q?=0A?=) could forge headers in every mail parting writes, so it is refused here."""
    candidates = [("company.name", (tree.get("company") or {}).get("name"))]
    for index, person in enumerate(_listed(tree.get("people"))):
        if isinstance(person, dict):
            candidates.append((f"people[{index}].name", person.get("name")))
    for index, client in enumerate(_listed(tree.get("clients"))):
        if isinstance(client, dict):
            candidates += [(f"clients[{index}].name", client.get("name")),
                           (f"clients[{index}].contact", client.get("contact"))]
    for path, value in candidates:
        if isinstance(value, str) and value is not BAD:
            try:
                check_header_value(path, value)
            except HeaderInjection as problem:
                report(path, f"cannot go into an email header ({problem}): write it on one line, without "
                             "control characters or encoded line breaks")


def merge_policy(base: dict, partial: dict) -> dict:
    """A named policy: the top-level one with the written keys replaced (`unresponsive` key by key)."""
    merged = {**base, **{key: value for key, value in partial.items() if key != "unresponsive"}}
    merged["unresponsive"] = {**base["unresponsive"], **partial.get("unresponsive", {})}
    return merged


def _listed(values: object) -> list:
    return values if isinstance(values, list) else []


def _check_mailbox(mailbox: dict, written: set[str], report: Report) -> list[str]:
    addresses = [a for a in _listed(mailbox["address"]) if a is not BAD]
    for index, address in enumerate(_listed(mailbox["address"])):
        if address is not BAD and address in _listed(mailbox["address"])[:index]:
            report(f"mailbox.address[{index}]", f"{address} is listed twice")
        local = address.rpartition("@")[0] if isinstance(address, str) else ""
        if len(local) > MAX_MAILBOX_LOCAL:
            report(f"mailbox.address[{index}]", f"the local part {local!r} is {len(local)} characters: replies to "
                   f"review emails go to {local}+r-<token>@..., and RFC 5321 allows 64 characters before the @, "
                   f"so it can be at most {MAX_MAILBOX_LOCAL}. Use a shorter alias of the mailbox")
    generic = mailbox["provider"] == "generic"
    oauth2 = mailbox["auth"] == "oauth2"
    for protocol in ("imap", "smtp"):
        server, path = mailbox[protocol], f"mailbox.{protocol}"
        if "mailbox" in written and generic and path not in written:
            report(path, f"required key is missing (mailbox.provider is generic): the {protocol.upper()} server")
            continue
        if "mailbox" not in written or not ok(server["host"]):
            continue
        if server["host"] is None:
            report(f"{path}.host", "required key is missing: the server's host name (or set mailbox.provider "
                   "to microsoft365 or google, which fill it in)", at=path if path in written else "mailbox")
            continue
        if server["security"] == "none" and not is_loopback(server["host"]):
            report(f"{path}.security", "security none sends passwords and mail unencrypted, so it is allowed "
                   f"only to a loopback host (127.0.0.1, ::1, localhost), not {server['host']!r}: "
                   "use tls or starttls")
        has_file, has_env = server["password_file"] is not None, server["password_env"] is not None
        if has_file and has_env:
            report(f"{path}.password_env", "give password_file or password_env, not both")
        if oauth2:
            if has_file or has_env:
                report(f"{path}.{'password_file' if has_file else 'password_env'}", "mailbox.auth is oauth2, so "
                       "no password is used: remove it, or set mailbox.auth: password")
            continue
        if protocol == "imap" and not (has_file or has_env):
            report(path, "needs password_file or password_env: the password to log in with")
        if protocol == "smtp" and server["username"] is None and (has_file or has_env):
            report(f"{path}.{'password_file' if has_file else 'password_env'}", "a password but no username: "
                   "add mailbox.smtp.username, or remove the password for a server without login")
        if protocol == "smtp" and server["username"] not in (None, BAD) and not (has_file or has_env):
            report(f"{path}.username", "a username but no password: add password_file or password_env, "
                   "or remove username for a server without login")
    if oauth2 and "mailbox" in written:
        _check_oauth(mailbox["oauth"], report)
    return addresses


def _check_oauth(oauth: dict[str, Any], report: Report) -> None:
    at = "mailbox.oauth"
    if oauth["client_id"] is None:
        report(f"{at}.client_id", "required with mailbox.auth oauth2: the application (client) id of your "
               "app registration (README: Microsoft 365 / Google Workspace)", at="mailbox.auth")
    if oauth["token_url"] is None:
        report(f"{at}.token_url", "required with mailbox.auth oauth2 when mailbox.provider is generic: the "
               "identity provider's token endpoint", at="mailbox.auth")
    needs = {"device": "device_url", "browser": "authorize_url"}.get(oauth["flow"] or "device")
    if needs and oauth[needs] is None and ok(oauth["flow"]):
        report(f"{at}.{needs}", f"required for flow {oauth['flow'] or 'device'}: the identity provider's "
               f"{'device authorization' if needs == 'device_url' else 'authorization'} endpoint",
               at=f"{at}.flow" if oauth["flow"] else "mailbox.auth")
    given = {}  # the client credentials written: secret, certificate, private key -> the key that says so
    for name in ("client_secret", "client_certificate", "client_private_key"):
        has_file, has_env = oauth[f"{name}_file"] is not None, oauth[f"{name}_env"] is not None
        if has_file and has_env:
            report(f"{at}.{name}_env", f"give {name}_file or {name}_env, not both")
        if has_file or has_env:
            given[name] = f"{at}.{name}_{'file' if has_file else 'env'}"
    certificate, key = given.get("client_certificate"), given.get("client_private_key")
    if certificate and not key:
        report(certificate, "a certificate without its private key: add client_private_key_file (the PEM "
               "key the certificate was made with), or leave the certificate out")
    if key and not certificate:
        report(key, "a private key without its certificate: add client_certificate_file (the PEM "
               "certificate uploaded to the app registration), or leave the key out")
    if "client_secret" in given and (certificate or key):
        report(given["client_secret"], "give a client secret or a certificate, not both: the app proves "
               "itself with one of them (leave the secret out to sign with the certificate)")
    if oauth["flow"] == "client_credentials" and not given:
        report(f"{at}.flow", "client_credentials needs the app's secret or certificate: set "
               "client_secret_file (or client_secret_env), or client_certificate_file and "
               "client_private_key_file")
    if not oauth["scopes"] and ok(oauth["scopes"]):
        report(f"{at}.scopes", "required with mailbox.auth oauth2 when mailbox.provider is generic: the "
               "scopes that give access to IMAP and SMTP", at="mailbox.auth")


def _check_people(people: list, report: Report) -> set[str] | None:
    """The person ids, or None when some id is unreadable (so references cannot be judged)."""
    ids: dict[str, int] = {}
    emails: dict[str, int] = {}
    complete = True
    for index, person in enumerate(people):
        if person is BAD or not ok(person["id"]):
            complete = False
            continue
        if person["id"] in ids:
            report(f"people[{index}].id", f"{person['id']!r} is already the id of people[{ids[person['id']]}]")
        ids.setdefault(person["id"], index)
        if ok(person["email"]) and person["email"] in emails:
            report(f"people[{index}].email", f"{person['email']} is already the email of "
                   f"people[{emails[person['email']]}]")
        emails.setdefault(person["email"], index)
    return set(ids) if complete else None


def _check_working_hours(hours: dict, report: Report) -> None:
    if ok(hours["start"], hours["end"]) and hours["start"] >= hours["end"]:
        report("working_hours.end", f"the working day must end after it starts ({hours['start']})")
    days = _listed(hours["days"])
    if ok(hours["days"]) and not days:
        report("working_hours.days", "needs at least one working day")
    for index, day in enumerate(days):
        if day is not BAD and day in days[:index]:
            report(f"working_hours.days[{index}]", f"{day} is listed twice")
    calendar = hours["holidays"]
    country, subdivision = calendar["country"], calendar["subdivision"]
    if subdivision in (None, BAD):
        return
    if country is None:
        report("working_hours.holidays.subdivision", "a subdivision needs working_hours.holidays.country")
    elif country is not BAD:
        spelling = subdivision_spelling(country, subdivision)
        if spelling is None:
            import holidays  # every country's module, but only to list them for a mistake

            known = ", ".join(holidays.list_supported_countries().get(country, [])) or "none"
            report("working_hours.holidays.subdivision",
                   f"{country} has no subdivision {shown(subdivision)}; known: {known}")
        calendar["subdivision"] = spelling


def _check_policy(policy: dict, path: str, written: dict | None, report: Report) -> None:
    """Sanity of one policy; for a named policy only rules touching keys it writes itself."""
    if written is None or "ladder" in written:
        previous, actions = 0, dict[str, int]()
        for index, step in enumerate(_listed(policy["ladder"])):
            if step is BAD:
                continue
            after, action = step["after_ignored"], step["action"]
            if ok(after) and after <= previous:
                report(f"{path}.ladder[{index}].after_ignored", f"must be greater than the step before it "
                       f"({previous}): the ladder is climbed in order, one step at a time")
            if ok(after):
                previous = max(previous, after)
            if ok(action) and action in actions:
                report(f"{path}.ladder[{index}].action", f"{action} is already step {actions[action]}: "
                       "each action appears at most once")
            actions.setdefault(action, index)
    window_written = written is None or "within" in written.get("unresponsive", {})
    ignored_after, within = policy["ignored_after"], policy["unresponsive"]["within"]
    if (window_written or (written is not None and "ignored_after" in written)) and ok(ignored_after, within) \
            and within.as_timedelta() < ignored_after.as_timedelta():
        report(f"{path}.unresponsive.within" if window_written else f"{path}.ignored_after",
               f"this policy can never fire: a request counts as ignored only after {ignored_after}, so "
               f"none can be ignored inside a window of {within}; make unresponsive.within longer than "
               "ignored_after")


def _check_clients(clients: list, people: set[str] | None, policies: set[str], ours: set[str],
                   report: Report) -> None:
    our_domains = {address.rpartition("@")[2] for address in ours}
    ids: dict[str, int] = {}
    seen: dict[str, dict[str, str]] = {"addresses": {}, "domains": {}}
    domain_owner: dict[str, str] = {}
    for client in clients:
        for domain in _listed(client["domains"]) if client is not BAD else []:
            if domain is not BAD and domain not in our_domains:
                domain_owner.setdefault(domain, client["id"])
    for index, client in enumerate(clients):
        if client is BAD:
            continue
        path, client_id = f"clients[{index}]", client["id"]
        if ok(client_id) and client_id in ids:
            report(f"{path}.id", f"{client_id!r} is already the id of clients[{ids[client_id]}]")
        ids.setdefault(client_id, index)
        if ok(client["addresses"], client["domains"]) and not client["addresses"] and not client["domains"]:
            report(path, f"client {client_id} needs at least one address or domain, or no mail can be "
                   "recognised as theirs")
        owner = client["owner"]
        if people is not None and ok(owner) and owner not in people:
            report(f"{path}.owner", f"{owner!r} is not a person in people{did_you_mean(owner, sorted(people))}")
        policy = client["policy"]
        if policy not in (None, BAD, "default") and policy not in policies:
            hint = did_you_mean(policy, sorted(policies)) or ("" if policies else " (there are no policies)")
            report(f"{path}.policy", f"{policy!r} is not a policy in policies{hint}")
        for kind, our_own in (("domains", our_domains), ("addresses", ours)):
            for position, value in enumerate(_listed(client[kind])):
                if value is BAD:
                    continue
                value_path = f"{path}.{kind}[{position}]"
                earlier = seen[kind].setdefault(value, client_id)
                domain_client = domain_owner.get(value.rpartition("@")[2], client_id)
                if value in our_own:
                    report(value_path, f"{value} is ours (the mailbox or a member of staff), not the client's")
                elif earlier != client_id:
                    report(value_path, f"{value} already belongs to client {earlier}: it can belong to one "
                           "client only")
                elif kind == "addresses" and domain_client != client_id:
                    report(value_path, f"{value} is in the domain of client {domain_client}: mail from it "
                           "would belong to two clients")


def _check_review(review: dict, clients: list, people: set[str] | None, report: Report,
                  provider: object = "generic") -> None:
    reviewers = [r for r in _listed(review["reviewers"]) if r is not BAD]
    seen: set[str] = set()
    for index, reviewer in enumerate(_listed(review["reviewers"])):
        if reviewer is BAD:
            continue
        if people is not None and reviewer not in people:
            report(f"review.reviewers[{index}]", f"{reviewer!r} is not a person in people"
                   f"{did_you_mean(reviewer, sorted(people))}")
        elif reviewer in seen:
            report(f"review.reviewers[{index}]", f"{reviewer} is listed twice")
        seen.add(reviewer)
    # microsoft365 and google bring their own evidence (core/evidence.py); generic has only this.
    if review["require_authentication"] is True and review["authserv_id"] is None and provider == "generic":
        report("review.authserv_id", "required while require_authentication is true: the authserv-id that "
               "your receiving server writes in Authentication-Results, e.g. mx.example.com")
    has_file, has_env = review["token_key_file"] is not None, review["token_key_env"] is not None
    if has_file == has_env:
        report("review.token_key_env" if has_env else "review", "give exactly one of token_key_file and "
               "token_key_env: the secret key review tokens are signed with")
    needed = review["approvals_required"]
    if not ok(needed, review["reviewers"]):
        return
    unique = list(dict.fromkeys(reviewers))
    for index, client in enumerate(clients):
        if client is BAD or not ok(client["owner"], client["id"]) or client["exempt"] is True:
            continue
        owner, client_id = client["owner"], client["id"]
        others = [r for r in unique if r != owner and (people is None or r in people)]
        if len(others) >= needed:
            continue
        if not others and owner in unique:
            message = f"{owner} owns {client_id} and is its only reviewer: add another reviewer to review.reviewers"
        elif not others:
            message = f"no reviewer other than its owner {owner}: add a person to review.reviewers"
        else:
            message = (f"{client_id} needs {needed} reviewers besides its owner {owner}, but review.reviewers "
                       f"has {len(others)} ({', '.join(others)}): add reviewers or lower "
                       "review.approvals_required")
        report(f"clients[{index}].owner", message)

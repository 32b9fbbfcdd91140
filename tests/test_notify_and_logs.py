"""sd_notify datagrams (including abstract sockets) and the log formatters, without a daemon."""

from __future__ import annotations

import io
import json
import logging
import os
import socket

from daemon.runtime.logs import get_logger, register_secret, setup_logging
from daemon.runtime.notify import Notifier, watchdog_interval


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"parting-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2)
    try:
        notifier = Notifier("@" + name)
        assert notifier.ready("watching 2 clients")
        assert server.recv(1024).decode() == "READY=1\nSTATUS=watching 2 clients"
        assert notifier.watchdog() and server.recv(1024) == b"WATCHDOG=1"
        assert notifier.stopping() and server.recv(1024) == b"STOPPING=1"
    finally:
        server.close()


def test_notify_without_systemd_is_a_quiet_no_op(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and not notifier.ready()
    assert not Notifier("/nonexistent/socket").watchdog(), "a failed send never raises"


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


def capture(fmt: str) -> tuple[io.StringIO, logging.Logger]:
    stream = io.StringIO()
    setup_logging(fmt, "info", stream=stream)
    return stream, get_logger("flow")


def test_json_lines_carry_level_component_and_ids() -> None:
    stream, log = capture("json")
    log.warning("reply refused: %s", "not authenticated", extra={"client": "acme", "draft": 3, "message_id": "m@x"})
    event = json.loads(stream.getvalue())
    assert event["level"] == "warning" and event["component"] == "flow"
    assert (event["client"], event["draft"], event["message_id"]) == ("acme", 3, "m@x")
    assert event["message"] == "reply refused: not authenticated"


def test_text_lines_are_one_line_with_key_values() -> None:
    stream, log = capture("text")
    log.info("verdict %s", "unresponsive", extra={"client": "acme"})
    assert stream.getvalue().strip() == "INFO    flow: verdict unresponsive client=acme"


def test_a_registered_secret_is_masked_in_every_format() -> None:
    register_secret("hunter2-imap-password")
    for fmt in ("text", "json"):
        stream, log = capture(fmt)
        log.error("login failed with hunter2-imap-password at imap.example.com")
        assert "hunter2-imap-password" not in stream.getvalue()
        assert "********" in stream.getvalue()


def test_a_message_with_line_breaks_stays_one_text_line() -> None:
    stream, log = capture("text")
    log.warning("reply refused: %s", "unknown command\nWrite APPROVE\nor REJECT", extra={"client": "acme"})
    lines = stream.getvalue().splitlines()
    assert lines == ["WARNING flow: reply refused: unknown command\\nWrite APPROVE\\nor REJECT client=acme"]

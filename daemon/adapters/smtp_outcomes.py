"""What a send attempt came to: accepted, or a problem the outbox acts on (temporary, permanent,
uncertain). Shared by the SMTP adapter and its OAuth2 login, which raise them."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.core.model import SmtpSettings


@dataclass(frozen=True)
class SendResult:
    """The server's reply to the end of DATA: it accepted the message."""

    code: int
    reply: str


class DeliveryProblem(Exception):
    """Base of the outcomes the outbox acts on; `reason` is written for a person to read."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TemporaryFailure(DeliveryProblem):
    """Not sent, and trying again later may work (4xx, network, TLS)."""


class PermanentFailure(DeliveryProblem):
    """Not sent, and trying again will not help until someone changes something (5xx, config)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason, code)


class UncertainDelivery(DeliveryProblem):
    """The whole message may have reached the server: never retried automatically."""


def endpoint(settings: SmtpSettings) -> str:
    return f"{settings.host}:{settings.port}"

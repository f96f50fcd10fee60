"""How the outbound queue sends: the settings every part of it reads (the queue,
its routes to each recipient domain, one SMTP transaction)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from letterlock.config import SmtpConfig
from letterlock.errors import ConfigError


@dataclass(frozen=True)
class OutboundSettings:
    hostname: str
    """Name given in EHLO and as the reporting MTA of bounces."""
    smarthost: str = ""
    """``host:port`` to relay everything through; empty means MX delivery."""
    tls_policy: str = "opportunistic"
    """``none``, ``opportunistic`` (STARTTLS when offered, certificate not checked)
    or ``required`` (STARTTLS mandatory, certificate verified with ``tls_context``)."""
    max_age_s: float = 5 * 24 * 3600
    delay_notice_s: float = 4 * 3600
    """Seconds a message waits before its sender is told it is delayed; 0: never."""
    port: int = 25
    """TCP port of MX hosts."""
    retry_base_s: float = 300.0
    retry_max_s: float = 4 * 3600.0
    concurrency: int = 8
    timeout_s: float = 60.0
    tls_context: ssl.SSLContext | None = None
    """Trust for verified TLS (``required``, MTA-STS); None: the system's roots."""

    @classmethod
    def from_config(cls, config: SmtpConfig, hostname: str) -> OutboundSettings:
        if config.outbound_tls not in ("none", "opportunistic", "required"):
            raise ConfigError(f"smtp.outbound_tls: unknown policy {config.outbound_tls!r}")
        return cls(hostname=hostname, smarthost=config.smarthost,
                   tls_policy=config.outbound_tls, max_age_s=config.queue_max_age_s,
                   delay_notice_s=config.delay_notice_s)

"""User notices: the letter that tells an account holder a legal request concerned
their account, what was asked and what was done. ``matters`` decides when it is due
(at once, when a gag expires, never while only preserving) and delivers it."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from letterlock.policy import Decision, LegalRequest, format_time
from letterlock.storage.legal_sqlite import NoticeRow


def notice_text(matter_id: str, request: LegalRequest, decision: Decision) -> str:
    lines = [
        "A government request concerned your account.",
        "",
        f"Reference: {matter_id}",
        f"Received: {format_time(request.received_at)}",
        f"From: {request.issuer.authority} in {request.issuer.country}",
        f"Instrument: {request.instrument}",
        f"Asked for: {', '.join(request.categories)}",
        "",
        "What we did:",
    ]
    for _, category, finding in decision.findings():
        lines.append(f"  {category}: {finding.outcome}")
    lines += ["", "Your mail is sealed to your key: we cannot read it, and we did not hand "
                  "over anything we could read."]
    return "\n".join(lines) + "\n"


def notice_message(notice: NoticeRow) -> bytes:
    msg = EmailMessage()
    domain = notice.address.rsplit("@", 1)[1]
    msg["From"] = f"Legal notices <legal-notices@{domain}>"
    msg["To"] = notice.address
    msg["Subject"] = f"A legal request concerned your account ({notice.matter_id})"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(notice.text)
    return bytes(msg).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

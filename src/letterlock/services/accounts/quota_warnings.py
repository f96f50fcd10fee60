"""The mail an account's owner gets when it reaches 80 % or 95 % of a quota limit."""

from __future__ import annotations

import email.utils
import uuid

from letterlock.services.accounts.quotas import Quota, Usage
from letterlock.units import human_size


def quota_warning(address: str, level: int, quota: Quota, usage: Usage) -> bytes:
    """A plain-text message to ``address`` saying how full its mailbox is."""
    domain = address.rpartition("@")[2]
    lines = [f"Your mailbox {address} has reached {level} % of its quota.", ""]
    if quota.storage is not None:
        lines.append(f"Storage:  {human_size(usage.storage)} of {human_size(quota.storage)}")
    if quota.messages is not None:
        lines.append(f"Messages: {usage.messages} of {quota.messages}")
    lines += ["", "When it is full, new mail to you is refused (senders are told your",
              "mailbox is full) and your mail program cannot save drafts or copies.",
              "Delete mail you no longer need (and empty the Trash), or ask your",
              "administrator for more room.", ""]
    body = "\r\n".join(lines)
    head = (f"From: Mail system <postmaster@{domain}>\r\nTo: <{address}>\r\n"
            f"Subject: Your mailbox is {level} % full\r\n"
            f"Date: {email.utils.formatdate(localtime=False)}\r\n"
            f"Message-ID: <quota-{uuid.uuid4().hex}@{domain}>\r\n"
            "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    return (head + body).encode()

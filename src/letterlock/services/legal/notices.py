"""User notices: the letter that tells an account holder a legal request concerned
their account, in plain words: who asked, under what, which kinds of data went out
and when (or were kept, refused, redirected), what of it we could read, and what the
holder can do. ``matters`` decides when it is due (before anything is handed over, at
a gag's expiry, after an emergency, when an EU order's issuing authority asks; never
while only preserving) and delivers it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from letterlock.policy import Decision, Finding, LegalRequest
from letterlock.storage.legal_sqlite import NoticeRow

INSTRUMENTS = {
    "us-subpoena": "a subpoena (United States)",
    "us-2703d-order": "a court order under 18 U.S.C. 2703(d) (United States)",
    "us-warrant": "a search warrant (United States)",
    "us-preservation": "a preservation request under 18 U.S.C. 2703(f) (United States)",
    "us-nsl": "a National Security Letter (United States)",
    "us-fisa": "an order under the Foreign Intelligence Surveillance Act (United States)",
    "emergency": "an emergency disclosure request",
    "uk-copo": "an overseas production order (United Kingdom)",
    "au-ipo": "an international production order (Australia)",
    "eu-epoc": "a European Production Order (Regulation (EU) 2023/1543)",
    "eu-epoc-pr": "a European Preservation Order (Regulation (EU) 2023/1543)",
    "mlat": "a request under a mutual legal assistance treaty",
    "budapest-art7": "a request for subscriber information under the Budapest "
                     "Convention's Second Protocol (article 7)",
    "foreign-order": "an order of a foreign authority",
    "civil": "a subpoena or order in a civil case",
}
AUTHORITIES = {
    "court": "a court", "prosecutor": "a prosecutor", "police": "the police",
    "intelligence": "an intelligence service", "administrative": "an administrative "
    "authority", "civil-party": "a party to a civil case",
}
CATEGORIES = {
    "subscriber": ("subscriber data",
                   "your address, when the account was made and the country where it "
                   "is stored; readable"),
    "identification": ("identification data",
                       "your account's internal number and its public key; readable"),
    "traffic": ("traffic data",
                "for each message: its folder, size, date received and flags; readable. "
                "Senders, recipients and subjects are sealed to your key and were not "
                "part of it"),
    "content": ("content",
                "your messages as sealed ciphertext only: they are sealed to your key, "
                "and we hold no key that can open them"),
}
NOT_HANDED_OVER = {
    "preserve": "kept as it is (preserved), not handed over",
    "no-data": "we hold no such data",
    "reject": "refused",
    "redirect-mlat": "refused: the authority must ask through a treaty between "
                     "governments (mutual legal assistance)",
    "redirect-to-customer": "referred to the organisation that runs your mail domain",
    "challenge": "not handed over: we are challenging the request",
    "hold-enforcing-state": "not handed over yet: waiting for the state where we are "
                            "established to object or not",
    "query-issuer": "not handed over: we asked the authority to explain the request",
    "escalate": "not handed over: under review by our legal team",
}
READABLE = frozenset({"subscriber", "identification", "traffic"})


def _when(at: datetime) -> str:
    return f"{at:%d %B %Y}, {at:%H:%M} UTC"


def notice_text(matter_id: str, request: LegalRequest, decision: Decision, target: str,
                at: datetime, *, ahead: bool, contact: str,
                earlier: Collection[str] = ()) -> str:
    """The notice to ``target``. ``at``: when the data goes out; ``ahead``: the
    notice is sent just before it does (before-disclosure), else after; ``earlier``:
    categories an earlier stage of the matter handed over (told then)."""
    findings: list[tuple[str, Finding]] = [
        (c, f) for t, c, f in decision.findings() if t == target and c not in earlier]
    issuer = request.issuer
    who = AUTHORITIES.get(issuer.authority, issuer.authority)
    if issuer.name:
        who += f" ({issuer.name})"
    lines = [
        "A government request concerned your account.",
        "",
        f"Reference: {matter_id}",
        f"Who asked: {who}, in {issuer.country}",
        f"Under what: {INSTRUMENTS.get(request.instrument, request.instrument)}",
        f"Served on us: {_when(request.served_at)}",
        "",
    ]
    disclosed = [c for c, f in findings if f.outcome == "disclose"]
    withheld = [(c, f) for c, f in findings if f.outcome != "disclose"]
    if disclosed:
        lines.append(("What we are handing over, right after this notice, on "
                      if ahead else "What we handed over, on ") + _when(at) + ":")
        for category in disclosed:
            name, what = CATEGORIES.get(category, (category, ""))
            lines.append(f"  - {name}: {what}." if what else f"  - {name}.")
    elif not earlier:
        lines.append("We handed over nothing.")
    else:
        lines.append("We handed over nothing more at this stage.")
    if earlier:
        names = ", ".join(CATEGORIES.get(c, (c, ""))[0] for c in earlier)
        lines.append(f"Handed over earlier (our earlier notice told you): {names}.")
    if withheld:
        lines += ["", "What we did not hand over:"]
        for category, finding in withheld:
            name = CATEGORIES.get(category, (category, ""))[0]
            lines.append(f"  - {name}: {NOT_HANDED_OVER.get(finding.outcome, finding.outcome)}.")
    lines.append("")
    readable = [CATEGORIES.get(c, (c, ""))[0] for c in disclosed if c in READABLE]
    if readable:
        lines.append(f"The {' and '.join(readable)} we hand over can be read by the "
                     "authority. Your messages themselves stay sealed to your key.")
    else:
        lines.append("Your mail is sealed to your key: nothing we handed over can be "
                     "read without it.")
    challenge = next((d.due for d in decision.deadlines if d.kind == "challenge"), None)
    lines += [
        "",
        "What you can do:",
        "  - Ask a lawyer in the country of the authority, or in yours, whether the "
        "request was lawful and whether you can challenge it.",
        f"  - Write to us at {contact}, quoting the reference above, with questions or "
        "to tell us of a reason the request should not be answered.",
    ]
    if challenge is not None:
        lines.append(f"  - The time to challenge this request runs until {_when(challenge)}.")
    else:
        lines.append("  - We know of no deadline for challenging it; a lawyer can tell "
                     "you whether one applies.")
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


def default_contact(address: str) -> str:
    """Whom a notice tells the user to write to when the operator named no one: the
    postmaster of their own domain (accepted on every hosted domain)."""
    return f"postmaster@{address.rsplit('@', 1)[1]}"


"""Regression (issue 14, point 5): a matter closed without a decision (the authority
withdrew it, or it was answered outside the system) was left out of the transparency
report, as if it had never been received. It is now counted in its own column,
``closed_undecided``, and in none of the outcome columns."""

from __future__ import annotations

from letterlock.app import App
from letterlock.services.legal.matters import LegalService
from letterlock.services.transparency.rendering import render_csv, render_html
from letterlock.services.transparency.report import Period, load_decided_matters, report_for

from .harness import make_request
from .matter_support import add_bob, clock, legal

__all__ = ["clock", "legal"]


async def test_matter_closed_without_decision_is_reported_on_its_own_line(
        app: App, legal: LegalService) -> None:
    await add_bob(app)
    withdrawn = await legal.file(make_request(issuer={"country": "US"}), "counsel")
    await legal.close(withdrawn.id, "counsel")
    decided = await legal.file(make_request(categories=["subscriber"]), "counsel")
    await legal.decide(decided.id, "counsel")
    await legal.file(make_request(), "counsel")  # open, undecided: not yet reported
    await app.audit.flush()  # type: ignore[attr-defined]

    matters = await load_decided_matters(app.config.control_dir)
    assert sorted(m.matter_id for m in matters) == sorted([withdrawn.id, decided.id])
    report = await report_for(app.config.control_dir, Period.parse("2025-H1"))
    [us] = report.rows
    assert us.closed_undecided == 1
    assert us.requests == 1 and us.non_content == 1  # only the decided one
    assert us.content + us.non_content + us.no_data + us.rejected == us.requests
    assert report.totals.closed_undecided == 1
    assert report.matters_counted == 2
    assert "closed_undecided" in render_csv(report).splitlines()[3]
    assert "Closed without a decision" in render_html(report)

"""A matter's audit trail as the legal console reads it: ``MatterTrails`` (which reads
only what the log gained since its last read) gives, after every step, exactly what
reading the whole log gives, also once an order is lifted (its sealed events are
revealed) or extended (sealed anew); and a step logged once per target is one entry
naming the targets."""

from __future__ import annotations

from letterlock.app import App
from letterlock.services.legal.trail import MatterTrails, TrailEntry, matter_trail

from .harness import make_request

BOB = "bob@example.test"
CAROL = "carol@example.test"
SUBPOENA = make_request(instrument="us-subpoena", categories=["subscriber"],
                        targets=[BOB, CAROL])


async def _same(app: App, index: MatterTrails, *matters: str) -> dict[str, list[TrailEntry]]:
    out = {}
    for matter in matters:
        kept = await index.trail(matter)
        assert kept == await matter_trail(app.audit, matter), matter
        out[matter] = kept
    return out


async def test_the_index_agrees_with_the_whole_log_after_every_step(app: App) -> None:
    for address in (BOB, CAROL):
        await app.accounts.create(address, "us-east", "a password, long enough")
    index = MatterTrails(app.audit)
    plain = (await app.legal.file(SUBPOENA, "lou")).id
    gagged = (await app.legal.file({**SUBPOENA, "gag": {"indefinite": True}}, "lou")).id
    dated = (await app.legal.file({**SUBPOENA, "gag": {"until": "2030-01-01T00:00:00Z"}},
                                  "lou")).id
    await _same(app, index, plain, gagged, dated)

    await app.legal.decide(plain, "lee")
    await app.legal.decide(gagged, "lee")
    await app.legal.decide(dated, "lee")
    trails = await _same(app, index, plain, gagged, dated)
    steps = [(e.type, e.actor) for e in trails[plain]]
    assert steps[:3] == [("legal:matter:filed", "lou"), ("legal:matter:evaluated", "policy"),
                         ("legal:matter:decided", "lee")]
    notices = [e.accounts for e in trails[plain] if e.type == "legal:notice:sent"]
    assert sorted(notices) == [(BOB,), (CAROL,)]  # one notice each, each read once
    filed = trails[plain][0]
    assert filed.accounts == (BOB, CAROL) and not filed.sealed  # one entry, both targets
    assert all(e.sealed for e in trails[gagged])

    await app.legal.extend_gag(dated, "kim", None)
    await app.legal.lift_gag(gagged, "kim")
    await app.legal.close(plain, "ada")
    trails = await _same(app, index, plain, gagged, dated)
    kinds = [e.type for e in trails[gagged]]
    assert "legal:gag:lifted" in kinds
    assert all(e.sealed for e in trails[gagged] if e.type != "legal:gag:lifted"
               and e.type != "legal:notice:sent")  # revealed, but logged sealed
    assert kinds.index("legal:matter:filed") < kinds.index("legal:gag:lifted")
    assert ("legal:gag:extended", "kim") in [(e.type, e.actor) for e in trails[dated]]
    assert trails[plain][-1].type == "legal:matter:closed"
    assert trails[plain][-1].actor == "ada"
    assert await index.trail("M-nope") == []

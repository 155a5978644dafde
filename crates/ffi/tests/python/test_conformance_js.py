"""What the JavaScript conformance client (conformance/js/client.mjs, written from the protocol
and schema docs with Automerge JS) writes reads exactly the same on a Python phone: Text
strings, Date times and the event log it wrote the idiomatic JS way. The Rust side, the
dashboard and the refusals are checked in crates/sync-server/tests/conformance_js.rs.
Needs Node.js and `npm ci --prefix conformance/js` (scripts/test does both)."""

import asyncio
import json
import os
import pathlib
import subprocess

import pytest

from doorstep_ffi import RequestStatus, Urgency, VisitKind

from test_bindings import enrolled, new_household, sync

CLIENT = pathlib.Path(__file__).resolve().parents[4] / "conformance" / "js" / "client.mjs"


def js(state, *args):
    if not (CLIENT.parent / "node_modules" / "@automerge" / "automerge").exists():
        pytest.fail("run `npm ci --prefix conformance/js` first (scripts/test does)")
    out = subprocess.run(["node", str(CLIENT), state, *args], capture_output=True, text=True)
    assert out.returncode == 0, f"the JS client failed:\n{out.stderr}\n{out.stdout}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_what_the_javascript_client_writes_reads_the_same_on_a_python_phone(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    home = worker.create_household(new_household(county.grid, "501", "陈奶奶"))
    sync(worker)

    js_member = county._member("赵敏", "grid_worker")
    written = js(os.path.join(phones, "js.json"), "write", "--server", county.url, "--code", county.code(js_member))
    assert written["member"] == js_member and written["household"] == home
    # The visit credited to the Python worker and the rewritten event note are refused; they
    # stay pending in JS and never arrive here.
    assert sorted(h["code"] for h in written["refused"]["held_back"]) == ["forged_actor", "invalid_document"]

    sync(worker)
    visits = {v.id: v for v in worker.household(home).visits}
    assert written["refused"]["forged_visit"] not in visits
    mine = written["visit"]
    visit = visits[mine["id"]]
    assert (visit.by, visit.at_ms, visit.kind, visit.notes, visit.needs) == (
        js_member, mine["at"], VisitKind.CARE, mine["notes"], ["送餐", "陪同就医"])

    expected = written["request"]
    request = worker.request(expected["id"])
    assert (request.household, request.grid, request.category, request.description, request.urgency) == (
        home, county.grid, written["category"], expected["description"], Urgency.NORMAL)
    assert (request.raised_at_ms, request.due_at_ms) == (expected["raised_at"], expected["due_at"])
    assert request.due_at_ms == request.raised_at_ms + written["due_hours"] * 3_600_000
    assert request.status == RequestStatus.IN_PROGRESS and not request.has_conflict
    events = {e.id: e for e in request.events}
    assert len(events) == 3
    for e in expected["events"]:
        got = events[e["id"]]
        assert (got.kind, got.by, got.at_ms, got.note, got.not_applied) == (e["kind"], js_member, e["at"], e["note"], False)

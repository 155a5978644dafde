"""A store the app cannot damage (issue 25, section 1): one handle per file, a damaged document
set aside while the rest syncs, each kind of broken file reported as itself, re-enrolment that
keeps unsynced work, and the lifecycle calls an app needs."""

import asyncio
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from doorstep_ffi import DoorstepError, ErrorKind, Replica

from conftest import SERVER
from test_bindings import KEY, enrolled, new_household, open_replica, sync, visit

# The test helper built with the workspace: plants damage inside an encrypted replica.
FIXTURE = os.path.join(os.path.dirname(SERVER), "doorstep-replica-fixture")


def chinese_only(message_zh):
    """A message for the screen: Chinese, with no internal English words in it."""
    assert re.search(r"[\u4e00-\u9fff]", message_zh), message_zh
    assert not re.search(r"[A-Za-z]{3,}", message_zh), message_zh


def failure(call):
    with pytest.raises(DoorstepError.Failed) as caught:
        call()
    chinese_only(caught.value.message_zh)
    assert caught.value.message_en
    return caught.value


# ---- 1. one handle per file -------------------------------------------------------------------

OPEN_ELSEWHERE = """
import sys
from doorstep_ffi import DoorstepError, Replica
try:
    replica = Replica.open(sys.argv[1], sys.argv[2].encode())
except DoorstepError.Failed as e:
    print(e.kind.name)
    sys.exit(0)
print("OPENED")
"""


def open_in_another_process(path):
    child = subprocess.run(
        [sys.executable, "-c", OPEN_ELSEWHERE, path, KEY.decode()],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=True,
    )
    return child.stdout.strip()


def test_a_replica_file_opened_twice_is_refused_here_and_from_another_process(county, phones):
    path = os.path.join(phones, "worker.db")
    first = Replica.open(path, KEY)
    asyncio.run(first.enrol(county.url, county.code(county.worker), "worker"))
    home = first.create_household(new_household(county.grid, "101", "赵桂兰"))

    assert failure(lambda: Replica.open(path, KEY)).kind == ErrorKind.ALREADY_OPEN
    # Spelled another way: through a link, or relative to the working directory.
    link = os.path.join(phones, "link.db")
    os.symlink(path, link)
    assert failure(lambda: Replica.open(link, KEY)).kind == ErrorKind.ALREADY_OPEN
    assert failure(lambda: Replica.open_with_durability(os.path.relpath(path), KEY, False)).kind == ErrorKind.ALREADY_OPEN
    assert open_in_another_process(path) == "ALREADY_OPEN"

    # The first handle is untouched, and once it is closed the file opens again, anywhere.
    first.record_visit(home, visit("第一次走访"))
    assert sync(first).uploaded_changes == 2
    del first
    assert open_in_another_process(path) == "OPENED"
    again = Replica.open(path, KEY)
    assert len(again.household(home).visits) == 1
    assert sync(again).verified


# ---- 2. one damaged document does not stop the phone --------------------------------------------

def test_a_damaged_document_is_set_aside_while_the_rest_syncs_and_recovers_from_the_server(county, phones):
    path = os.path.join(phones, "worker.db")
    worker = Replica.open(path, KEY)
    asyncio.run(worker.enrol(county.url, county.code(county.worker), "worker"))
    damaged = worker.create_household(new_household(county.grid, "201", "钱奶奶"))
    healthy = worker.create_household(new_household(county.grid, "202", "孙爷爷"))
    sync(worker)
    # Unsynced work on both: a visit in the damaged one's second stored change survives.
    worker.record_visit(damaged, visit("血压偏高"))
    worker.record_visit(healthy, visit("一切正常"))
    del worker
    # Its first stored change (the registration, already on the server) is overwritten.
    subprocess.run([FIXTURE, "damage-document", path, KEY.hex(), damaged, "0"], check=True)

    worker = Replica.open(path, KEY)
    assert failure(lambda: worker.household(damaged)).kind == ErrorKind.DAMAGED
    report = sync(worker)
    assert [d.document for d in report.damaged] == [damaged]
    assert report.damaged[0].reason
    assert report.recovered == [damaged]
    # The rest synced, and the damaged one reads again: the server's copy plus the local visit.
    assert report.uploaded_changes == 2 and report.verified
    assert worker.unsynced_change_count() == 0
    assert [v.notes for v in worker.household(damaged).visits] == ["血压偏高"]
    assert worker.damaged_documents() == []

    office = enrolled(county, phones, "office", county.supervisor)
    sync(office)
    assert [v.notes for v in office.household(damaged).visits] == ["血压偏高"]
    assert [v.notes for v in office.household(healthy).visits] == ["一切正常"]


def test_a_damaged_document_that_another_device_changes_is_rebuilt_with_those_changes(county, phones):
    path = os.path.join(phones, "worker.db")
    worker = Replica.open(path, KEY)
    asyncio.run(worker.enrol(county.url, county.code(county.worker), "worker"))
    home = worker.create_household(new_household(county.grid, "203", "吴阿姨"))
    sync(worker)
    del worker
    subprocess.run([FIXTURE, "damage-document", path, KEY.hex(), home, "0"], check=True)
    office = enrolled(county, phones, "office", county.supervisor)
    sync(office)
    office.record_visit(home, visit("主任回访"))
    sync(office)

    worker = Replica.open(path, KEY)
    report = sync(worker)
    assert [d.document for d in report.damaged] == [home] and report.recovered == [home]
    assert report.verified
    assert [v.notes for v in worker.household(home).visits] == ["主任回访"]


# ---- 3. a broken file is reported as what it is ----------------------------------------------------

def replica_file(county, phones, name, households=1):
    path = os.path.join(phones, name + ".db")
    replica = Replica.open(path, KEY)
    asyncio.run(replica.enrol(county.url, county.code(county.worker), name))
    for n in range(households):
        home = replica.create_household(new_household(county.grid, str(n), "住户"))
        replica.record_visit(home, visit("走访" * 500))
    del replica
    return path


def rewrite(path, at, data):
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def test_each_kind_of_broken_file_is_reported_as_itself(county, phones):
    page = 4096
    path = replica_file(county, phones, "phone", households=40)
    size = os.path.getsize(path)
    assert size >= 8 * page
    pristine = open(path, "rb").read()

    def broken(damage):
        with open(path, "wb") as f:
            f.write(pristine)
        damage()
        return failure(lambda: Replica.open(path, KEY))

    wrong = failure(lambda: Replica.open(path, b"another key of thirty-two bytes!"))
    assert wrong.kind == ErrorKind.WRONG_KEY
    # Inside the first page (after SQLCipher's salt): the other pages prove the key right.
    assert broken(lambda: rewrite(path, 100, os.urandom(200))).kind == ErrorKind.DAMAGED_FILE
    assert broken(lambda: rewrite(path, 0, bytes(100))).kind == ErrorKind.DAMAGED_FILE
    assert broken(lambda: os.truncate(path, size // 2 + 1000)).kind == ErrorKind.DAMAGED_FILE
    with open(path, "wb") as f:
        f.write(os.urandom(3 * page + 123))
    assert failure(lambda: Replica.open(path, KEY)).kind == ErrorKind.NOT_A_REPLICA
    os.remove(path)
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE notes (text TEXT)")
    plain.commit()
    plain.close()
    not_ours = failure(lambda: Replica.open(path, KEY))
    assert not_ours.kind == ErrorKind.NOT_A_REPLICA

    # A page in the middle: the file opens, the check finds it, and a read that needs it says
    # the file is damaged (never "storage", never the key).
    with open(path, "wb") as f:
        f.write(pristine)
    rewrite(path, (size // page // 2) * page + 500, os.urandom(64))
    replica = Replica.open(path, KEY)
    check = replica.check_integrity()
    assert not check.ok and check.problems
    kinds = set()
    try:
        for household in replica.households_in_grid(county.grid):
            replica.household(household.id)
    except DoorstepError.Failed as e:
        kinds.add(e.kind)
        chinese_only(e.message_zh)
    assert kinds <= {ErrorKind.DAMAGED_FILE, ErrorKind.DAMAGED}

    # A healthy file checks out.
    del replica
    with open(path, "wb") as f:
        f.write(pristine)
    assert Replica.open(path, KEY).check_integrity().ok


# ---- 4. enrolling again keeps the unsynced work ---------------------------------------------------

def test_enrolling_again_keeps_and_uploads_the_unsynced_work_credited_to_the_member(county, phones):
    worker = open_replica(phones, "worker")
    first_device = asyncio.run(worker.enrol(county.url, county.code(county.worker), "worker")).device_id
    home = worker.create_household(new_household(county.grid, "401", "李奶奶"))
    sync(worker)
    worker.record_visit(home, visit("换证书前记的"))
    assert worker.unsynced_change_count() == 1

    again = asyncio.run(worker.enrol(county.url, county.code(county.worker), "worker"))
    assert again.device_id != first_device and worker.device_id() == again.device_id
    assert worker.member_id() == county.worker
    worker.record_visit(home, visit("换证书后记的"))
    report = sync(worker)
    assert report.uploaded_changes == 2 and report.verified
    assert worker.unsynced_change_count() == 0

    office = enrolled(county, phones, "office", county.supervisor)
    sync(office)
    visits = office.household(home).visits
    assert sorted(v.notes for v in visits) == ["换证书前记的", "换证书后记的"]
    assert {v.by for v in visits} == {county.worker}
    # The old device is replaced: its token no longer works.
    assert "revoked" in county.admin("device", "list")


# ---- 5. lifecycle ------------------------------------------------------------------------------------

def test_a_revoked_device_is_no_longer_enrolled(county, phones):
    replica = open_replica(phones, "lost")
    assert replica.member_id() is None and replica.device_id() is None and replica.server_url() is None
    enrolment = asyncio.run(replica.enrol(county.url, county.code(county.worker), "lost"))
    assert replica.device_id() == enrolment.device_id
    assert replica.server_url() == county.url
    county.admin("device", "revoke", "--device", enrolment.device_id)
    assert failure(lambda: sync(replica)).kind == ErrorKind.REVOKED
    assert replica.member_id() is None and replica.device_id() is None and replica.server_url() is None
    assert failure(lambda: sync(replica)).kind == ErrorKind.NOT_ENROLLED
    # The same file enrols again with a new code.
    asyncio.run(replica.enrol(county.url, county.code(county.worker), "found"))
    assert replica.member_id() == county.worker


def test_wipe_signs_out_and_deletes_the_files_but_not_unsynced_work_unless_forced(county, phones):
    path = os.path.join(phones, "shared.db")
    replica = Replica.open(path, KEY)
    asyncio.run(replica.enrol(county.url, county.code(county.worker), "shared"))
    home = replica.create_household(new_household(county.grid, "501", "周大爷"))
    refused = failure(lambda: replica.wipe(False))
    assert refused.kind == ErrorKind.UNSYNCED_WORK
    assert replica.household(home).residents
    sync(replica)
    replica.record_visit(home, visit("没同步"))
    replica.wipe(True)
    assert not [f for f in os.listdir(phones) if f.startswith("shared.db")]
    assert replica.member_id() is None and replica.document_count() == 0
    # The path is free again: a fresh replica, not enrolled.
    fresh = Replica.open(path, KEY)
    assert fresh.member_id() is None and fresh.document_count() == 0
    sync_free = failure(lambda: sync(fresh))
    assert sync_free.kind == ErrorKind.NOT_ENROLLED
    fresh.wipe(False)
    assert not os.path.exists(path)


def test_a_key_that_is_not_32_bytes_is_refused_for_a_new_file(phones):
    path = os.path.join(phones, "new.db")
    for key in (b"", b"short", KEY + b"!"):
        refused = failure(lambda: Replica.open(path, key))
        assert refused.kind == ErrorKind.INVALID_INPUT and "32" in refused.message_zh
        assert not os.path.exists(path)
    replica = Replica.open(path, KEY)
    assert failure(lambda: replica.rotate_key(b"short")).kind == ErrorKind.INVALID_INPUT

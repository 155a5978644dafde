"""The phone API through the generated Python bindings, against a real doorstep-server."""

import asyncio
import os

import pytest

from doorstep_ffi import (
    Address,
    AttachmentState,
    Conflict,
    DoorstepError,
    ErrorKind,
    LocationFix,
    NewHousehold,
    NewRequest,
    NewResident,
    NewVisit,
    Replica,
    RequestAction,
    RequestFilter,
    RequestStatus,
    ResidentPatch,
    ResidentTag,
    Sex,
    SyncObserver,
    SyncPhase,
    TransferObserver,
    Urgency,
    VisitKind,
)

KEY = b"0123456789abcdef0123456789abcdef"


def open_replica(phones, name, key=KEY):
    return Replica.open(os.path.join(phones, name + ".db"), key)


def enrolled(county, phones, name, member):
    replica = open_replica(phones, name)
    asyncio.run(replica.enrol(county.url, county.code(member), name))
    return replica


def sync(replica, observer=None):
    return asyncio.run(replica.sync(observer))


def visit(notes):
    return NewVisit(kind=VisitKind.ROUTINE, notes=notes, needs=[], at_ms=None)


def new_household(grid, room, name):
    return NewHousehold(
        address=Address(community="幸福社区", grid=grid, building="3栋", unit="1单元", room=room),
        residents=[NewResident(name=name, sex=Sex.FEMALE, birth_year=1942, phone="", tags=[ResidentTag.ELDERLY_ALONE])],
        notes="",
    )


class Progress(SyncObserver):
    def __init__(self):
        self.events = []

    def on_progress(self, progress):
        self.events.append(progress)


def test_two_offline_devices_see_everything_and_a_conflict_that_resolves(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    office = enrolled(county, phones, "office", county.supervisor)
    home = worker.create_household(new_household(county.grid, "501", "赵桂兰"))
    request = worker.raise_request(
        NewRequest(household=home, grid=None, category="elderly_care", description="需要每周送餐", urgency=Urgency.NORMAL, at_ms=None)
    )
    progress = Progress()
    report = sync(worker, progress)
    assert report.uploaded_changes == 2 and report.verified
    assert progress.events[-1].phase == SyncPhase.DONE
    assert progress.events[-1].upload_total == 2
    assert progress.events[-1].uploaded_changes == 2
    assert sync(office).documents_received == 2

    # Offline on both: visits and requests, and two decisions on the same request.
    worker.record_visit(home, visit("送药上门"))
    office.record_visit(home, visit("回访，老人状态良好"))
    street = office.raise_request(
        NewRequest(household=None, grid=county.grid, category="sanitation", description="路口垃圾没人清", urgency=Urgency.URGENT, at_ms=None)
    )
    worker.act_on_request(request, RequestAction.RESOLVE_ON_SPOT(), "已联系送餐")
    office.act_on_request(request, RequestAction.DISPATCH(department="civil_affairs"), "转民政局")
    assert worker.unsynced_change_count() == 2 and office.unsynced_change_count() == 3

    sync(worker)
    sync(office)
    sync(worker)
    for replica in (worker, office):
        assert replica.unsynced_change_count() == 0
        assert len(replica.household(home).visits) == 2
        assert replica.request(street).status == RequestStatus.RAISED
        conflicts = replica.conflicts()
        assert len(conflicts) == 1 and isinstance(conflicts[0], Conflict.REQUEST)
        assert len(conflicts[0].events) == 2
        assert replica.request(request).has_conflict
    assert worker.request(request).status == office.request(request).status

    # The supervisor settles it; the resolution reaches the worker like any change.
    office.review_request_conflict(request, RequestStatus.DISPATCHED, "由民政局跟进")
    sync(office)
    sync(worker)
    for replica in (worker, office):
        assert replica.conflicts() == []
        assert replica.request(request).status == RequestStatus.DISPATCHED
    mine = worker.list_requests(RequestFilter(statuses=[], open_only=True, overdue=False, assigned_to_me=False, grid=None, household=home, category=None))
    assert [r.id for r in mine] == [request]


def test_a_field_edited_on_both_devices_keeps_both_values_until_chosen(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    office = enrolled(county, phones, "office", county.supervisor)
    home = worker.create_household(new_household(county.grid, "502", "钱奶奶"))
    sync(worker)
    sync(office)
    resident = office.household(home).residents[0].id
    worker.update_resident(home, resident, ResidentPatch(name=None, sex=None, birth_year=None, clear_birth_year=False, phone="13800000001", add_tags=[], remove_tags=[]))
    office.update_resident(home, resident, ResidentPatch(name=None, sex=None, birth_year=None, clear_birth_year=False, phone="13900000002", add_tags=[], remove_tags=[]))
    sync(worker)
    sync(office)
    sync(worker)
    conflict = worker.conflicts()[0]
    assert isinstance(conflict, Conflict.FIELD)
    assert conflict.values == ["13800000001", "13900000002"]
    worker.resolve_field_conflict(home, conflict.field, "13900000002")
    sync(worker)
    sync(office)
    assert office.conflicts() == []
    assert office.household(home).residents[0].phone == "13900000002"


def test_a_household_registered_twice_is_marked_as_one_and_the_mark_undone(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    office = enrolled(county, phones, "office", county.supervisor)
    first = worker.create_household(new_household(county.grid, "601", "周奶奶"))
    second = office.create_household(new_household(county.grid, "601", "周秀兰"))
    worker.record_visit(first, visit("第一次登记"))
    office.record_visit(second, visit("又登记了一次"))
    sync(worker)
    sync(office)
    sync(worker)
    worker.mark_same_household(first, second)
    sync(worker)
    sync(office)
    for replica in (worker, office):
        rows = [h for h in replica.households_in_grid(county.grid) if h.address_line.endswith("601")]
        assert len(rows) == 1
        merged = replica.merged_household(second)
        assert len(merged.household.visits) == 2 and len(merged.merged) == 1
    office.unmark_same_household(first, second)
    sync(office)
    sync(worker)
    rows = worker.households_in_grid(county.grid)
    assert len([h for h in rows if h.address_line.endswith("601")]) == 2
    with pytest.raises(DoorstepError) as refused:
        worker.unmark_same_household(first, second)
    assert refused.value.kind == ErrorKind.INVALID_INPUT


def test_a_wrong_key_is_a_clear_error_and_the_data_survives(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    home = worker.create_household(new_household(county.grid, "1", "孙大爷"))
    del worker
    with pytest.raises(DoorstepError.Failed) as wrong:
        open_replica(phones, "worker", b"not the key")
    assert wrong.value.kind == ErrorKind.WRONG_KEY
    assert "密钥" in wrong.value.message_zh
    again = open_replica(phones, "worker")
    assert again.household(home).residents[0].name == "孙大爷"
    again.rotate_key(b"a brand new key for the keystore")
    del again  # one open handle per file: close before opening again
    with pytest.raises(DoorstepError.Failed) as old_key:
        open_replica(phones, "worker")
    assert old_key.value.kind == ErrorKind.WRONG_KEY
    assert open_replica(phones, "worker", b"a brand new key for the keystore").household(home).address.room == "1"


def test_a_replica_opened_for_speed_keeps_what_it_wrote(county, phones):
    path = os.path.join(phones, "fast.db")
    fast = Replica.open_with_durability(path, KEY, False)
    asyncio.run(fast.enrol(county.url, county.code(county.worker), "fast"))
    home = fast.create_household(new_household(county.grid, "3", "快手机"))
    del fast
    assert Replica.open(path, KEY).household(home).residents[0].name == "快手机"


def test_a_bad_enrolment_code_is_refused(county, phones):
    replica = open_replica(phones, "phone")
    with pytest.raises(DoorstepError.Failed) as refused:
        asyncio.run(replica.enrol(county.url, "ABCDE-FGHJK", "phone"))
    assert refused.value.kind == ErrorKind.INVALID_CODE
    with pytest.raises(DoorstepError.Failed) as not_enrolled:
        sync(replica)
    assert not_enrolled.value.kind == ErrorKind.NOT_ENROLLED
    with pytest.raises(DoorstepError.Failed) as invalid:
        replica.create_household(new_household("not-a-grid", "1", "x"))
    assert invalid.value.kind == ErrorKind.INVALID_INPUT


def test_a_server_that_is_down_loses_nothing(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    home = worker.create_household(new_household(county.grid, "7", "周爷爷"))
    worker.record_visit(home, visit("停电了也要记"))
    address = county.url.split("//")[1]
    county.stop()
    with pytest.raises(DoorstepError.Failed) as down:
        sync(worker)
    assert down.value.kind == ErrorKind.NETWORK
    assert "网络" in down.value.message_zh
    assert worker.unsynced_change_count() == 2
    county.start(listen=address)
    report = sync(worker)
    assert report.uploaded_changes == 2 and report.verified
    assert worker.unsynced_change_count() == 0


def test_screens_read_the_replica(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    first = worker.create_household(new_household(county.grid, "101", "吴奶奶"))
    second = worker.create_household(new_household(county.grid, "102", "郑爷爷"))
    worker.record_visit(second, visit("走访"))
    rows = worker.households_in_grid(county.grid)
    assert [r.id for r in rows] == [first, second], "never visited first"
    assert rows[1].last_visit_at_ms is not None
    assert len(worker.households_with_tag(ResidentTag.ELDERLY_ALONE)) == 2
    timeline = worker.household_timeline(second)
    assert len(timeline) == 1 and timeline[0].is_visit
    assert worker.grids() == [county.grid]
    assert any(c.code == "micro_wish" and c.name_zh == "微心愿" for c in worker.categories())
    with pytest.raises(DoorstepError.Failed) as transition:
        request = worker.raise_request(
            NewRequest(household=first, grid=None, category="micro_wish", description="想要一个书包", urgency=Urgency.NORMAL, at_ms=None)
        )
        worker.act_on_request(request, RequestAction.CLOSE(), "")
    assert transition.value.kind == ErrorKind.INVALID_TRANSITION


def test_listen_stores_pushed_changes_and_the_replica_stays_usable(county, phones):
    import threading

    from doorstep_ffi import LiveObserver

    worker = enrolled(county, phones, "worker", county.worker)
    office = enrolled(county, phones, "office", county.supervisor)

    class Live(LiveObserver):
        def __init__(self):
            self.connected = threading.Event()
            self.changed = threading.Event()
            self.documents = 0

        def on_connected(self):
            self.connected.set()

        def on_changes(self, documents):
            self.documents += documents
            self.changed.set()

    async def scenario():
        live = Live()
        listening = asyncio.ensure_future(office.listen(live))
        assert await asyncio.to_thread(live.connected.wait, 30), "connected"
        home = worker.create_household(new_household(county.grid, "9", "冯奶奶"))
        await worker.sync(None)
        assert await asyncio.to_thread(live.changed.wait, 30), "a push arrived"
        # The replica is usable while listening.
        office.record_visit(home, visit("收到推送后马上走访"))
        assert office.household(home).residents[0].name == "冯奶奶"
        office.cancel_sync()
        await asyncio.wait_for(listening, 30)
        return live

    live = asyncio.run(scenario())
    assert live.documents == 1


def test_a_revoked_device_is_told_so_and_deletes_its_data_even_when_listening(county, phones):
    from doorstep_ffi import LiveObserver

    replica = open_replica(phones, "lost-phone")
    enrolment = asyncio.run(replica.enrol(county.url, county.code(county.worker), "lost-phone"))
    replica.create_household(new_household(county.grid, "4", "陈阿姨"))
    sync(replica)
    assert replica.document_count() == 1
    county.admin("device", "revoke", "--device", enrolment.device_id)

    class Quiet(LiveObserver):
        def on_connected(self):
            pass

        def on_changes(self, documents):
            pass

    with pytest.raises(DoorstepError.Failed) as revoked:
        asyncio.run(replica.listen(Quiet()))
    assert revoked.value.kind == ErrorKind.REVOKED
    assert revoked.value.message_en and "停用" in revoked.value.message_zh
    assert replica.document_count() == 0


def test_the_replica_answers_while_a_sync_reports_progress(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    for room in range(5):
        worker.create_household(new_household(county.grid, str(room), "住户"))

    class Reading(SyncObserver):
        def __init__(self):
            self.seen = []

        def on_progress(self, progress):
            # Calling back into the replica from the observer must not wait for the sync.
            self.seen.append(worker.unsynced_change_count())

    reading = Reading()
    report = sync(worker, reading)
    assert report.uploaded_changes == 5
    assert reading.seen and reading.seen[-1] == 0


def test_a_county_certificate_is_trusted_once_given_and_an_untrusted_one_loses_nothing(tls_county, phones):
    import threading

    from conftest import self_signed_certificate
    from doorstep_ffi import LiveObserver

    county = tls_county
    assert county.url.startswith("https://")

    # Without the county's CA the server is refused as untrusted (not as "network"), and the
    # phone stays unenrolled; a text that is no certificate is bad input.
    stranger = open_replica(phones, "stranger")
    with pytest.raises(DoorstepError.Failed) as untrusted:
        asyncio.run(stranger.enrol(county.url, county.code(county.worker), "stranger"))
    assert untrusted.value.kind == ErrorKind.UNTRUSTED_CERTIFICATE
    assert "证书" in untrusted.value.message_zh and untrusted.value.message_en
    assert stranger.member_id() is None
    with pytest.raises(DoorstepError.Failed) as invalid:
        asyncio.run(stranger.enrol(county.url, county.code(county.worker), "stranger", "not a certificate"))
    assert invalid.value.kind == ErrorKind.INVALID_INPUT

    # Given once at enrolment, the CA is remembered: sync() and listen() use it (https, wss).
    worker = open_replica(phones, "worker")
    asyncio.run(worker.enrol(county.url, county.code(county.worker), "worker", county.ca_pem))
    office = open_replica(phones, "office")
    asyncio.run(office.enrol(county.url, county.code(county.supervisor), "office", server_ca_pem=county.ca_pem))

    class Live(LiveObserver):
        def __init__(self):
            self.connected = threading.Event()
            self.changed = threading.Event()

        def on_connected(self):
            self.connected.set()

        def on_changes(self, documents):
            self.changed.set()

    async def pushed_over_wss():
        live = Live()
        listening = asyncio.ensure_future(office.listen(live))
        assert await asyncio.to_thread(live.connected.wait, 30), "connected over wss"
        worker.create_household(new_household(county.grid, "3", "何奶奶"))
        report = await worker.sync(None)
        assert report.uploaded_changes == 1 and report.verified
        assert await asyncio.to_thread(live.changed.wait, 30), "a push arrived over wss"
        office.cancel_sync()
        await asyncio.wait_for(listening, 30)

    asyncio.run(pushed_over_wss())
    assert office.document_count() == 1

    # The server comes back with a certificate the phone was never given: refused, and the
    # visit recorded meanwhile stays; with the known certificate again, it uploads.
    home = worker.households_in_grid(county.grid)[0].id
    worker.record_visit(home, visit("证书更换期间的走访"))
    address = county.url.split("//")[1]
    known = county.tls
    county.stop()
    county.tls = self_signed_certificate(county.data_dir, "replacement")
    county.start(listen=address)
    with pytest.raises(DoorstepError.Failed) as replaced:
        sync(worker)
    assert replaced.value.kind == ErrorKind.UNTRUSTED_CERTIFICATE
    assert worker.unsynced_change_count() == 1
    assert len(worker.household(home).visits) == 1
    county.stop()
    county.tls = known
    county.start(listen=address)
    report = sync(worker)
    assert report.uploaded_changes == 1 and report.verified
    assert worker.unsynced_change_count() == 0


class Transfers(TransferObserver):
    def __init__(self):
        self.events = []

    def on_transfer(self, progress):
        self.events.append(progress)


def test_a_photo_and_a_location_follow_the_record_with_progress(county, phones):
    worker = enrolled(county, phones, "worker", county.worker)
    office = enrolled(county, phones, "office", county.supervisor)
    home = worker.create_household(new_household(county.grid, "301", "陈奶奶"))
    fix = LocationFix(latitude=30.5928, longitude=114.3055, accuracy_m=8.0, at_ms=1_780_000_000_000)
    visit_id = worker.record_visit_located(home, visit("楼道漏水"), fix)
    photo = bytes(range(256)) * 400  # 100 KB
    digest = worker.attach_to_visit(home, visit_id, "image/jpeg", "漏水.jpg", photo)
    [listed] = worker.attachments(home)
    assert (listed.hash, listed.size, listed.state) == (digest, len(photo), AttachmentState.LOCAL_ONLY)
    with pytest.raises(DoorstepError) as too_big:
        worker.attach_to_visit(home, visit_id, "image/jpeg", "big.jpg", b"x" * (11 * 1024 * 1024))
    assert too_big.value.kind == ErrorKind.INVALID_INPUT and "附件过大" in too_big.value.message_zh

    # Wi-Fi only: records sync, the photo waits.
    worker.set_photos_on_wifi_only(True)
    sync(worker)
    held = asyncio.run(worker.transfer_attachments(False, True, None))
    assert held.waiting_for_wifi == 1 and held.bytes_up == 0

    # The office sees the visit and its place at once, and the photo as pending.
    sync(office)
    seen = office.household(home).visits[0]
    assert seen.location == fix and seen.attachment_hashes == [digest]
    assert office.attachments(home)[0].state == AttachmentState.REMOTE_ONLY
    with pytest.raises(DoorstepError) as pending:
        office.attachment_bytes(digest)
    assert pending.value.kind == ErrorKind.NOT_FOUND

    # On Wi-Fi the photo goes, chunk by chunk; the office fetches it on demand.
    progress = Transfers()
    sent = asyncio.run(worker.transfer_attachments(True, True, progress))
    assert sent.uploaded == 1 and sent.bytes_up == len(photo)
    assert progress.events[-1].upload and progress.events[-1].done == len(photo)
    assert worker.attachments(home)[0].state == AttachmentState.SYNCED
    fetched = Transfers()
    assert asyncio.run(office.fetch_attachment(home, digest, fetched)) == photo
    assert not fetched.events[-1].upload and fetched.events[-1].done == len(photo)
    assert office.attachments(home)[0].state == AttachmentState.SYNCED

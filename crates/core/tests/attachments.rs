//! Attachments and location fixes in the device store: the bytes live in the (encrypted)
//! replica file beside the documents, their references travel in the documents, a receiving
//! replica sees "photo pending" until the bytes arrive, and they are purged with the documents.

use doorstep_core::CoreError;
use doorstep_core::ids::{DocumentId, GridId, MemberId};
use doorstep_core::model::{
    Address, AttachmentState, ContentHash, LocationFix, NewAttachment, NewHousehold, NewVisit, VisitKind,
};
use doorstep_core::store::Replica;
use doorstep_core::time::Timestamp;

const T0: i64 = 1_780_000_000_000;

fn signed_in() -> Replica {
    let mut replica = Replica::open_in_memory().expect("open");
    replica.set_member(MemberId::new_random()).expect("member");
    replica
}

fn household(grid: GridId) -> NewHousehold {
    NewHousehold {
        address: Address {
            community: "幸福社区".into(),
            grid,
            building: "3栋".into(),
            unit: "2单元".into(),
            room: "301".into(),
        },
        residents: vec![],
        notes: String::new(),
    }
}

fn photo(seed: u8, len: usize) -> NewAttachment {
    NewAttachment {
        media_type: "image/jpeg".into(),
        name: format!("photo-{seed}.jpg"),
        bytes: (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect(),
    }
}

fn relay(from: &mut Replica, to: &mut Replica) {
    for id in from.documents_with_unsynced_changes().expect("dirty") {
        let changes = from.unsynced_changes(id).expect("changes");
        to.apply_remote(id, &changes.concat()).expect("apply");
        let heads = to.heads(id).expect("heads");
        from.acknowledge(id, &heads).expect("ack");
    }
}

#[test]
fn a_photo_travels_as_a_reference_and_its_bytes_follow_in_parts() {
    let mut phone = signed_in();
    let mut other = signed_in();
    let home = phone.create_household(&household(GridId::new_random()), Timestamp(T0)).expect("household");
    let fix = LocationFix { latitude: 30.59, longitude: 114.30, accuracy_m: 12.5, at: Timestamp(T0) };
    let visit =
        NewVisit { at: Timestamp(T0), kind: VisitKind::SafetyCheck, notes: "漏水".into(), needs: vec![] };
    let vid = phone.record_visit_located(home, &visit, Some(&fix)).expect("visit");
    let file = photo(1, 70_000);
    let reference = phone.attach_to_visit(home, vid, &file, Timestamp(T0 + 1)).expect("attach");
    assert_eq!(reference.hash, ContentHash::of(&file.bytes));

    let doc: DocumentId = home.into();
    let listed = phone.attachments_of(doc).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, AttachmentState::LocalOnly);
    assert_eq!(listed[0].reference, reference, "the listing carries the reference, attach time included");
    assert_eq!(phone.attachment_uploads().expect("uploads").len(), 1);
    phone.record_uploaded(&reference.hash, 30_000).expect("progress");
    assert_eq!(phone.attachments_of(doc).expect("list")[0].state, AttachmentState::Uploading);
    phone.record_uploaded(&reference.hash, reference.size).expect("done");
    assert_eq!(phone.attachments_of(doc).expect("list")[0].state, AttachmentState::Synced);

    relay(&mut phone, &mut other);
    let seen = other.household(home).expect("household");
    assert_eq!(seen.visits[0].location, Some(fix));
    assert_eq!(seen.visits[0].attachments, vec![reference.clone()]);
    assert_eq!(other.attachments_of(doc).expect("list")[0].state, AttachmentState::RemoteOnly);
    assert_eq!(other.attachments_of(doc).expect("list")[0].reference.added_at, Timestamp(T0 + 1));
    let pending = other.attachment_downloads().expect("downloads");
    assert_eq!((pending.len(), pending[0].done), (1, 0));

    // Parts must follow each other; a cut download continues from what is held.
    assert!(other.store_attachment_part(&reference.hash, 10, &file.bytes[10..20]).is_err());
    assert_eq!(other.store_attachment_part(&reference.hash, 0, &file.bytes[..40_000]).expect("part"), 40_000);
    assert_eq!(other.attachment_downloads().expect("downloads")[0].done, 40_000);
    other.store_attachment_part(&reference.hash, 40_000, &file.bytes[40_000..]).expect("rest");
    assert_eq!(other.attachment_bytes(&reference.hash).expect("bytes"), file.bytes);
    assert_eq!(other.attachments_of(doc).expect("list")[0].state, AttachmentState::Synced);
}

#[test]
fn damaged_bytes_are_dropped_and_fetched_again() {
    let mut phone = signed_in();
    let mut other = signed_in();
    let home = phone.create_household(&household(GridId::new_random()), Timestamp(T0)).expect("household");
    let vid = phone
        .record_visit(
            home,
            &NewVisit { at: Timestamp(T0), kind: VisitKind::Routine, notes: String::new(), needs: vec![] },
        )
        .expect("visit");
    let file = photo(2, 1000);
    let reference = phone.attach_to_visit(home, vid, &file, Timestamp(T0)).expect("attach");
    relay(&mut phone, &mut other);
    let mut bad = file.bytes.clone();
    bad[500] ^= 1;
    let err = other.store_attachment_part(&reference.hash, 0, &bad).expect_err("mismatch");
    assert!(matches!(err, CoreError::AttachmentMismatch(_)));
    assert_eq!(other.attachment_downloads().expect("downloads")[0].done, 0);
}

#[test]
fn attachments_go_with_their_document_but_never_before_upload() {
    let mut phone = signed_in();
    let mut other = signed_in();
    let home = phone.create_household(&household(GridId::new_random()), Timestamp(T0)).expect("household");
    let vid = phone
        .record_visit(
            home,
            &NewVisit { at: Timestamp(T0), kind: VisitKind::Routine, notes: String::new(), needs: vec![] },
        )
        .expect("visit");
    let file = photo(3, 500);
    let reference = phone.attach_to_visit(home, vid, &file, Timestamp(T0)).expect("attach");
    relay(&mut phone, &mut other);

    // The receiving device drops the reference and any bytes with the document.
    other.store_attachment_part(&reference.hash, 0, &file.bytes).expect("bytes");
    other.purge(home.into()).expect("purge");
    assert!(other.attachment(&reference.hash).expect("lookup").is_none());

    // The device that took the photo keeps it until the server holds it whole.
    phone.purge(home.into()).expect("purge");
    assert_eq!(phone.attachment_bytes(&reference.hash).expect("kept"), file.bytes);

    // Limits are clear.
    let big = NewAttachment { bytes: vec![7; 11 * 1024 * 1024], ..photo(4, 0) };
    let home2 = phone.create_household(&household(GridId::new_random()), Timestamp(T0)).expect("household");
    let vid2 = phone
        .record_visit(
            home2,
            &NewVisit { at: Timestamp(T0), kind: VisitKind::Routine, notes: String::new(), needs: vec![] },
        )
        .expect("visit");
    assert!(matches!(
        phone.attach_to_visit(home2, vid2, &big, Timestamp(T0)),
        Err(CoreError::AttachmentTooLarge { .. })
    ));
}

#[test]
fn the_wifi_only_setting_is_kept_per_device() {
    let mut phone = signed_in();
    assert!(!phone.attachments_wifi_only().expect("default"));
    phone.set_attachments_wifi_only(true).expect("set");
    assert!(phone.attachments_wifi_only().expect("read"));
}

#[test]
fn photo_bytes_are_encrypted_at_rest_with_the_rest_of_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = b"PHOTO-MARKER-\xe6\xbc\x8f\xe6\xb0\xb4-0123456789";
    let bytes: Vec<u8> = marker.iter().copied().cycle().take(64 * 1024).collect();
    {
        let key = b"0123456789abcdef0123456789abcdef";
        let mut phone =
            Replica::open_encrypted(dir.path().join("phone.db"), key, Default::default()).expect("open");
        phone.set_member(MemberId::new_random()).expect("member");
        let home =
            phone.create_household(&household(GridId::new_random()), Timestamp(T0)).expect("household");
        let vid = phone
            .record_visit(
                home,
                &NewVisit {
                    at: Timestamp(T0),
                    kind: VisitKind::Routine,
                    notes: String::new(),
                    needs: vec![],
                },
            )
            .expect("visit");
        let file =
            NewAttachment { media_type: "image/jpeg".into(), name: "a.jpg".into(), bytes: bytes.clone() };
        phone.attach_to_visit(home, vid, &file, Timestamp(T0)).expect("attach");
        assert_eq!(phone.attachment_bytes(&ContentHash::of(&bytes)).expect("readable with the key"), bytes);
    }
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        on_disk.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    assert!(!on_disk.is_empty());
    assert!(!on_disk.windows(marker.len()).any(|w| w == marker), "photo bytes found in the clear");
}

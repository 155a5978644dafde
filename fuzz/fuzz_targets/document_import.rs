//! Document import on a device: arbitrary bytes received as a document's data (what a sync
//! reply or push carries) are applied to a replica, and loaded and read as Doorstep
//! documents. Refusals are expected; a panic is a finding.
#![no_main]

use doorstep_core::doc;
use doorstep_core::ids::{DocumentId, MemberId};
use doorstep_core::store::Replica;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = DocumentId::from_uuid(uuid::Uuid::from_u128(42));
    if let Ok(mut replica) = Replica::open_in_memory() {
        let _ = replica.set_member(MemberId::from_uuid(uuid::Uuid::from_u128(1)));
        let _ = replica.apply_remote(id, data);
        let _ = replica.documents();
        let _ = replica.list_requests(&Default::default());
    }
    if let Ok(loaded) = automerge::AutoCommit::load(data) {
        let _ = doorstep_core::sync::validate::facts(&loaded, id);
        let _ = doc::household::read(&loaded, id.as_household());
        let _ = doc::request::read(&loaded, id.as_request());
    }
});

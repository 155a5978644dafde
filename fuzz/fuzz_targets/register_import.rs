//! The household register import (CSV and XLSX) on arbitrary bytes: reading and planning
//! never panic, and every row is either planned or rejected with a reason.
#![no_main]

use doorstep_core::ids::GridId;
use doorstep_server::import::{plan, read_rows};
use doorstep_server::storage::GridRow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let grids = vec![GridRow {
        id: GridId::from_uuid(uuid::Uuid::from_u128(7)),
        name: "一网格".into(),
        community: "幸福社区".into(),
        street: "城关街道".into(),
    }];
    if let Ok(rows) = read_rows(data) {
        let planned = plan(&grids, &rows);
        let _ = (planned.households(), planned.residents(), planned.preview());
    }
    // The same bytes as an XLSX archive's start, so the zip reader is reached too.
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(data);
    let _ = read_rows(&zip);
});

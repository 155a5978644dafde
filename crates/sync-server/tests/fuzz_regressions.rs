//! Replays every checked-in fuzz input (`tests/fuzz_regressions/<target>/`: crashes the fuzz
//! targets found, and a few corpus entries that reach deep) through the same checks the
//! cargo-fuzz targets run (`fuzz/src/checks.rs`), so a fixed crash stays fixed without
//! nightly or cargo-fuzz. docs/SECURITY.md records the runs and findings.

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("input"))).collect()
}

/// Inputs every target gets besides its files: empty, tiny, and a frame that decodes.
fn always() -> Vec<Vec<u8>> {
    let manifest =
        doorstep_core::sync::frame::encode_client(&doorstep_core::sync::message::ClientMessage::Manifest);
    vec![
        vec![],
        vec![0],
        vec![1, 0xff],
        manifest,
        b"PK\x03\x04\x00\x00".to_vec(),
        "社区,网格\n幸福社区,一网格\n".into(),
    ]
}

fn replay(target: &str, check: fn(&[u8])) {
    for input in always() {
        check(&input);
    }
    for (path, input) in inputs(target) {
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(outcome.is_ok(), "{target}: {} fails again", path.display());
    }
}

#[test]
fn frame_decoder_inputs_replay_cleanly() {
    replay("frame_decoder", checks::frame_decoder);
}

#[test]
fn server_message_inputs_replay_cleanly() {
    replay("server_messages", checks::server_messages);
    // The checks' store lives for the process; leave nothing behind.
    for base in ["/dev/shm", "/tmp"] {
        let _ = std::fs::remove_dir_all(format!("{base}/doorstep-fuzz-{}", std::process::id()));
    }
}

#[test]
fn document_import_inputs_replay_cleanly() {
    replay("document_import", checks::document_import);
}

#[test]
fn register_import_inputs_replay_cleanly() {
    replay("register_import", checks::register_import);
}

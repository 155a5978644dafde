//! The frames and byte figures docs/PROTOCOL.md shows for an idle reconnect (§1, §8.3) are
//! produced here from the code's own messages, so a change to the messages fails this test
//! until the document is updated.

use doorstep_core::sync::frame::{encode_client, encode_server};
use doorstep_core::sync::message::{ClientMessage, ServerMessage, SyncReply, SyncRequest};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex of a frame as PROTOCOL.md prints it: 64 digits a line.
fn hex_block(bytes: &[u8]) -> String {
    let digits = hex(bytes);
    digits
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The idle round of §8.3: a device at cursor 1 that holds the shipped taxonomy asks for the
/// digest; nothing changed.
fn idle() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let request = encode_client(&ClientMessage::Sync(SyncRequest {
        cursor: 1,
        want_digest: true,
        taxonomy_version: Some(1),
        ..SyncRequest::default()
    }));
    let digest: [u8; 32] = *b"\xc8\xfb\x74\xa2\x22\xda\xb6\x89\x11\x9c\x86\x1d\x85\xcc\xf5\x2c\x10\x44\x32\x2d\xc8\xa4\x47\x83\x7a\x81\xfa\xc7\x91\x97\x99\x5d";
    let reply = |digest: Option<[u8; 32]>| {
        encode_server(&ServerMessage::Sync(SyncReply {
            cursor: 1,
            digest: digest.map(serde_bytes::ByteArray::new),
            ..SyncReply::default()
        }))
    };
    (request, reply(Some(digest)), reply(None))
}

fn protocol() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md")
}

#[test]
fn the_idle_reconnect_in_protocol_md_is_what_the_code_sends() {
    let (request, reply, reply_without_digest) = idle();
    let doc = protocol();
    let (up, down, plain) = (request.len(), reply.len(), reply_without_digest.len());
    let total = up + down;
    for expected in [
        hex_block(&request),
        hex_block(&reply),
        format!("Nothing changed. Request, {up} bytes:"),
        format!("Reply, 200, {down} bytes:"),
        format!("One round trip, {up} + {down} = {total} bytes of frame bodies"),
        format!("**one round trip of {total} bytes of frame bodies** ({up} up, {down} down"),
        format!("Without\n`want_digest` the reply is {plain} bytes"),
        format!("({up} + {plain} bytes, measured)"),
    ] {
        assert!(
            doc.contains(&expected),
            "docs/PROTOCOL.md does not say what the code sends; it should contain:\n{expected}"
        );
    }
}

#[test]
fn the_revoked_device_refusal_in_protocol_md_is_what_the_server_sends() {
    use doorstep_core::sync::message::{ErrorBody, ErrorCode};
    // The server's words for a revoked device (`http::authenticate`), as §8.5 shows them.
    let frame = encode_server(&ServerMessage::Error(ErrorBody {
        code: ErrorCode::DeviceRevoked,
        message: "this device was revoked; delete its local data".into(),
        doc: None,
        retry_after_secs: None,
    }));
    let doc = protocol();
    for expected in
        [format!("A revoked device's request (HTTP 401), {} bytes:", frame.len()), hex_block(&frame)]
    {
        assert!(doc.contains(&expected), "docs/PROTOCOL.md should contain:\n{expected}");
    }
}

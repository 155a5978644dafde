//! automerge-repo's messages as the baseline sends them: the `join` → `peer` handshake and
//! the per-document `sync` / `request` envelope `{type, senderId, targetId, documentId, data}`,
//! with automerge-repo's id formats.

use sha2::{Digest, Sha256};

use crate::cbor::Cbor;

/// The server's peer id (a host-named id, as an automerge-repo sync server has).
pub const SERVER_PEER: &str = "storage-server-county";

/// automerge-repo's document id for a 16-byte UUID: bs58check of its bytes (27–28 characters).
pub fn document_id(uuid: &[u8; 16]) -> String {
    bs58check(uuid)
}

/// bs58check: base-58 of the payload followed by the first 4 bytes of its double SHA-256.
pub fn bs58check(payload: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let check = Sha256::digest(Sha256::digest(payload));
    let mut data = payload.to_vec();
    data.extend_from_slice(&check[..4]);
    let zeros = data.iter().take_while(|b| **b == 0).count();
    let mut digits: Vec<u8> = Vec::new();
    for byte in &data {
        let mut carry = u32::from(*byte);
        for d in &mut digits {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits.iter().rev().map(|d| ALPHABET[*d as usize] as char));
    out
}

/// A device's peer id as automerge-repo makes them: `peer-` and 11 base-36 characters, each
/// chosen by `below(36)`.
pub fn peer_id(mut below: impl FnMut(u64) -> u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..11).map(|_| char::from(DIGITS[below(36).min(35) as usize])).collect();
    format!("peer-{tail}")
}

/// `{type, senderId, targetId, documentId, data}`, as automerge-repo's `SyncMessage` /
/// `RequestMessage`.
pub fn envelope(kind: &str, sender: &str, target: &str, document: &str, data: Vec<u8>) -> Cbor {
    Cbor::Map(vec![
        ("type".into(), Cbor::Text(kind.into())),
        ("senderId".into(), Cbor::Text(sender.into())),
        ("targetId".into(), Cbor::Text(target.into())),
        ("documentId".into(), Cbor::Text(document.into())),
        ("data".into(), Cbor::Bytes(data)),
    ])
}

/// The device's `join` message.
pub fn join_message(peer: &str, storage_id: &str) -> Cbor {
    Cbor::Map(vec![
        ("type".into(), Cbor::Text("join".into())),
        ("senderId".into(), Cbor::Text(peer.into())),
        (
            "peerMetadata".into(),
            Cbor::Map(vec![
                ("storageId".into(), Cbor::Text(storage_id.into())),
                ("isEphemeral".into(), Cbor::Bool(false)),
            ]),
        ),
        ("supportedProtocolVersions".into(), Cbor::Array(vec![Cbor::Text("1".into())])),
    ])
}

/// The server's `peer` answer to a `join`.
pub fn peer_message(target: &str, metadata: Cbor) -> Cbor {
    Cbor::Map(vec![
        ("type".into(), Cbor::Text("peer".into())),
        ("senderId".into(), Cbor::Text(SERVER_PEER.into())),
        ("targetId".into(), Cbor::Text(target.into())),
        ("peerMetadata".into(), metadata),
        ("selectedProtocolVersion".into(), Cbor::Text("1".into())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bs58check_keeps_leading_zeros_and_gives_uuid_ids_their_length() {
        assert!(bs58check(&[0, 0, 1]).starts_with("11"));
        let mut x: u64 = 0x5eed;
        for _ in 0..50 {
            let mut uuid = [0u8; 16];
            for b in &mut uuid {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                *b = (x >> 56) as u8;
            }
            uuid[0] |= 0x80; // a full-width first byte, as most UUIDs have
            let id = document_id(&uuid);
            assert!((27..=28).contains(&id.len()), "{id}");
            assert!(!id.contains(['0', 'O', 'I', 'l']), "{id}");
        }
    }

    #[test]
    fn peer_ids_have_automerge_repos_shape() {
        let mut n = 0;
        let id = peer_id(|m| {
            n += 7;
            n % m
        });
        assert_eq!(id.len(), 16);
        assert!(id.starts_with("peer-"));
    }
}

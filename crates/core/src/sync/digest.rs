//! The scope digest: one SHA-256 over every document id and its heads, so a device and the
//! server can prove they hold the same scope without listing it.
//!
//! Input, for each document in ascending id order: the 16 id bytes, the number of heads as one
//! byte (capped at 255), then the heads' 32-byte hashes in ascending order.

use automerge::ChangeHash;
use sha2::{Digest, Sha256};

use crate::ids::DocumentId;

/// Computes the digest of `(document, heads)` pairs given in any order.
pub fn scope_digest(mut docs: Vec<(DocumentId, Vec<ChangeHash>)>) -> [u8; 32] {
    docs.sort_by_key(|(id, _)| *id);
    let mut hasher = Sha256::new();
    for (id, mut heads) in docs {
        heads.sort();
        hasher.update(id.as_uuid().as_bytes());
        hasher.update([heads.len().min(255) as u8]);
        for head in heads {
            hasher.update(head.0);
        }
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_order_and_sees_every_head() {
        let a = DocumentId::new_random();
        let b = DocumentId::new_random();
        let h1 = ChangeHash([1; 32]);
        let h2 = ChangeHash([2; 32]);
        let one = scope_digest(vec![(a, vec![h1, h2]), (b, vec![h1])]);
        let same = scope_digest(vec![(b, vec![h1]), (a, vec![h2, h1])]);
        let other = scope_digest(vec![(a, vec![h1]), (b, vec![h1])]);
        assert_eq!(one, same);
        assert_ne!(one, other);
    }
}

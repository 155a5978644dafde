//! Storing Automerge heads (sets of change hashes) as one blob: the hashes sorted and
//! concatenated, 32 bytes each.

use automerge::ChangeHash;

/// Encodes heads as sorted, concatenated 32-byte hashes.
pub fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

/// Decodes heads written by [`encode_heads`]; `None` if the length is not a multiple of 32.
pub fn decode_heads(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes.chunks_exact(32).map(|chunk| ChangeHash::try_from(chunk).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_sorted() {
        let a = ChangeHash([1; 32]);
        let b = ChangeHash([2; 32]);
        let encoded = encode_heads(&[b, a]);
        assert_eq!(encoded.len(), 64);
        assert_eq!(decode_heads(&encoded), Some(vec![a, b]));
        assert_eq!(decode_heads(&encoded[..40]), None);
    }
}

//! The frame decoder on arbitrary bytes, both directions: it never panics, and whatever it
//! accepts encodes back to a frame that decodes to the same message.
#![no_main]

use doorstep_core::sync::frame::{decode_client, decode_server, encode_client, encode_server};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode_client(data, 1 << 20) {
        let again = encode_client(&message);
        assert_eq!(decode_client(&again, usize::MAX).ok(), Some(message));
    }
    if let Ok(message) = decode_server(data, 1 << 20) {
        let again = encode_server(&message);
        assert_eq!(decode_server(&again, usize::MAX).ok(), Some(message));
    }
});

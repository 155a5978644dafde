//! Framing: one protocol version byte, then one CBOR-encoded message. The same frames travel
//! as HTTP bodies and as WebSocket binary messages.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sync::message::{ClientMessage, ErrorBody, ErrorCode, ServerMessage};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// The HTTP content type of frames.
pub const FRAME_CONTENT_TYPE: &str = "application/vnd.doorstep.v1+cbor";
/// Default limit on one frame, both directions.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// A frame that could not be decoded, with the code to answer it with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FrameError {
    /// The protocol error code.
    pub code: ErrorCode,
    /// What was wrong.
    pub message: String,
}

impl FrameError {
    /// The error as a message body to send back.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code, message: self.message.clone(), doc: None, retry_after_secs: None }
    }
}

fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = vec![PROTOCOL_VERSION];
    // Writing CBOR into a Vec cannot fail for these plain data types.
    if ciborium::into_writer(message, &mut out).is_err() {
        out.truncate(1);
    }
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, FrameError> {
    if bytes.len() > max {
        return Err(FrameError {
            code: ErrorCode::FrameTooLarge,
            message: format!("frame of {} bytes is over the limit of {max}", bytes.len()),
        });
    }
    let Some((&version, body)) = bytes.split_first() else {
        return Err(FrameError { code: ErrorCode::MalformedFrame, message: "empty frame".into() });
    };
    if version != PROTOCOL_VERSION {
        return Err(FrameError {
            code: ErrorCode::UnsupportedVersion,
            message: format!(
                "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
            ),
        });
    }
    let mut reader = body;
    let message = ciborium::from_reader(&mut reader).map_err(|e| FrameError {
        code: ErrorCode::MalformedFrame,
        message: format!("undecodable frame: {e}"),
    })?;
    if !reader.is_empty() {
        return Err(FrameError {
            code: ErrorCode::MalformedFrame,
            message: "trailing bytes after the message".into(),
        });
    }
    Ok(message)
}

/// Encodes a device's message.
pub fn encode_client(message: &ClientMessage) -> Vec<u8> {
    encode(message)
}

/// Encodes a server's message.
pub fn encode_server(message: &ServerMessage) -> Vec<u8> {
    encode(message)
}

/// Decodes a device's message, refusing frames over `max` bytes.
pub fn decode_client(bytes: &[u8], max: usize) -> Result<ClientMessage, FrameError> {
    decode(bytes, max)
}

/// Decodes a server's message, refusing frames over `max` bytes.
pub fn decode_server(bytes: &[u8], max: usize) -> Result<ServerMessage, FrameError> {
    decode(bytes, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::message::SyncRequest;

    #[test]
    fn frames_round_trip_and_idle_sync_is_small() {
        let message = ClientMessage::Sync(SyncRequest { cursor: 123_456, ..SyncRequest::default() });
        let bytes = encode_client(&message);
        assert!(bytes.len() < 100, "an idle sync frame is {} bytes", bytes.len());
        assert_eq!(decode_client(&bytes, 1024), Ok(message));
    }

    #[test]
    fn bad_frames_get_their_codes() {
        let good = encode_client(&ClientMessage::Manifest);
        assert_eq!(decode_client(&[], 10).unwrap_err().code, ErrorCode::MalformedFrame);
        assert_eq!(decode_client(&good, 1).unwrap_err().code, ErrorCode::FrameTooLarge);
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        assert_eq!(decode_client(&wrong_version, 1024).unwrap_err().code, ErrorCode::UnsupportedVersion);
        assert_eq!(decode_client(&good[..good.len() - 1], 1024).unwrap_err().code, ErrorCode::MalformedFrame);
        assert_eq!(
            decode_client(&[PROTOCOL_VERSION, 0xff, 0x00], 1024).unwrap_err().code,
            ErrorCode::MalformedFrame
        );
        let mut trailing = good;
        trailing.push(0);
        assert_eq!(decode_client(&trailing, 1024).unwrap_err().code, ErrorCode::MalformedFrame);
    }
}

//! The crate's one error type.

/// What can go wrong in the baseline, on either side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that are not the CBOR subset the envelopes use.
    #[error("malformed CBOR: {0}")]
    Cbor(&'static str),
    /// A well-formed message the other side should not have sent.
    #[error("baseline protocol: {0}")]
    Protocol(String),
    /// An Automerge sync message, sync state or change that does not decode.
    #[error("undecodable Automerge data: {0}")]
    Decode(String),
    /// Automerge refused an operation.
    #[error(transparent)]
    Automerge(#[from] automerge::AutomergeError),
    /// The client's store.
    #[error(transparent)]
    Store(#[from] rusqlite::Error),
    /// HTTP between client and server.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// Sockets.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

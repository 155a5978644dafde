//! The baseline Doorstep is measured against: the automerge-repo way of syncing, one document
//! at a time with Automerge's sync protocol, each message in automerge-repo's CBOR envelope,
//! sync states persisted per document and peer. Both sides are here so every figure tool
//! (`doorstep-server`'s `sync_figures` example, `doorstep-loadgen --scenario baseline`) runs
//! the same baseline.
//!
//! Map:
//! - `cbor.rs`: the small CBOR subset the envelopes use (text, bytes, booleans, arrays, maps).
//! - `envelope.rs`: automerge-repo's messages — `join`/`peer`, `sync`/`request` envelopes,
//!   bs58check document ids, peer ids.
//! - `server.rs`: [`BaselineServer`], documents and per-peer sync states in memory, and its
//!   axum routes (`/join`, `/sync-batch`, `/sync-one`, `/heads`).
//! - `client.rs`: [`BaselineClient`], a device's documents and sync states persisted in an
//!   SQLite key-value table, syncing over HTTP in rounds until neither side has anything to say.
//! - `error.rs`: the crate's [`Error`].
//!
//! The baseline is given the benefit of the doubt: the server keeps everything in memory and
//! never writes to disk; the client knows its document ids up front and indexes nothing.

pub mod cbor;
pub mod client;
pub mod envelope;
mod error;
pub mod server;

pub use client::{BaselineClient, Mode, Session};
pub use error::Error;
pub use server::{BaselineServer, Shared};

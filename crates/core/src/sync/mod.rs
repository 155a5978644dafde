//! The sync engine, sans-IO: messages and frames in and out, no sockets, no clock.
//!
//! - [`message`], [`frame`]: the wire protocol (`docs/PROTOCOL.md`).
//! - [`client`]: the device side, driving a [`crate::store::Replica`].
//! - [`validate`]: what the server checks before storing an upload; [`entries`]: who may
//!   add, change or remove which entries of a document.
//! - [`digest`]: the scope digest both sides compare after catch-up.

pub mod client;
pub mod digest;
pub mod entries;
pub mod frame;
pub mod message;
pub mod validate;

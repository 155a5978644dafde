//! `doorstep-ffi`: the phone apps' way into Doorstep, through UniFFI (Kotlin, Swift, Python).
//!
//! This crate converts and delegates; the logic lives in `doorstep-core` and `doorstep-client`.
//! - [`replica`]: the [`replica::Replica`] object: open (encrypted), enrol, the app's screens
//!   and edits, conflicts.
//! - [`sync`]: `sync()` with progress and cancellation, and a live connection.
//! - [`types`]: plain records and enums crossing the boundary.
//! - [`error`]: the one error type, with a machine-readable kind and messages in Chinese and
//!   English.

uniffi::setup_scaffolding!();

pub mod attachments;
pub mod error;
pub mod replica;
pub mod same_household;
pub mod sync;
pub mod types;

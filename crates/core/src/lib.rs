//! `doorstep-core`: everything a Doorstep device or server knows about the domain, without
//! any I/O but a local SQLite file.
//!
//! Map of the crate:
//! - [`ids`], [`time`]: typed identifiers and timestamps.
//! - [`model`]: households, residents, visits, requests, events, the county taxonomy.
//! - [`lifecycle`]: the request status rules and the derivation of status from the event log.
//! - [`conflict`]: concurrent values and transitions kept for a person to resolve.
//! - [`doc`]: the Automerge layout of household and request documents.
//! - [`store`]: the device's local replica on SQLite, with index tables for the app's screens
//!   and the record of what the server has acknowledged.
//! - [`sync`]: the sans-IO sync engine: protocol messages, frames, the device-side client,
//!   the server's upload checks and the scope digest.
//! - [`error`]: the crate's one error type.

pub mod conflict;
pub mod doc;
pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod model;
pub mod store;
pub mod sync;
pub mod time;

pub use error::{CoreError, Result};

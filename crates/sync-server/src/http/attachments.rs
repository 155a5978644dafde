//! `/v1/attachments`: moving attachment bytes, apart from document sync so that records never
//! wait for photos (docs/PROTOCOL.md §10).
//!
//! Every request names the attachment (its SHA-256) and a document that references it; the
//! server serves it only if that document is in the device's scope and does reference it,
//! which is the same rule as for the document itself. Uploads go in chunks: the device asks how
//! much the server holds, then sends the rest, each chunk with its own SHA-256; the attachment
//! becomes fetchable only once the whole matches its hash.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use doorstep_core::ids::{DeviceId, DocumentId};
use doorstep_core::model::attachment::{AttachmentRef, ContentHash};
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::{AppState, authenticate, bearer, blocking, now};
use crate::storage::attachment::{BlobStatus, ChunkOutcome, MAX_CHUNK_BYTES};

/// The header carrying a chunk's SHA-256 (hex).
pub const CHUNK_HASH_HEADER: &str = "x-chunk-sha256";

/// Query of every attachment request.
#[derive(Debug, Deserialize)]
pub struct Target {
    /// A document that references the attachment.
    doc: String,
    /// Where an uploaded chunk starts.
    offset: Option<u64>,
    /// Fetch the server-made thumbnail instead of the full file.
    #[serde(default)]
    thumbnail: bool,
}

/// Authenticates the device and finds the attachment through a document in its scope.
async fn access(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    hash: &str,
    target: &Target,
) -> Result<(AttachmentRef, DocumentId, DeviceId), ApiError> {
    let device = authenticate(state, bearer(headers)).await?;
    let hash: ContentHash = hash.parse().map_err(|_| {
        ApiError::attachment(
            StatusCode::BAD_REQUEST,
            "bad_hash",
            "附件标识应为64位十六进制 SHA-256 / the attachment must be named by its SHA-256 in 64 hex digits",
        )
    })?;
    let doc: DocumentId = target.doc.parse().map_err(|_| {
        ApiError::attachment(
            StatusCode::BAD_REQUEST,
            "bad_document",
            "doc 参数应为文档标识 / the doc parameter must be a document id",
        )
    })?;
    let storage = state.storage.clone();
    let device_id = device.id;
    let found = blocking(move || storage.attachment_in_scope(&device, doc, &hash)).await??;
    let reference = found.ok_or_else(|| {
        ApiError::attachment(
            StatusCode::FORBIDDEN,
            "out_of_scope",
            "该附件不属于本设备范围内的任何文档 / no document in this device's scope references this attachment",
        )
    })?;
    if reference.size > state.max_attachment_bytes {
        return Err(too_large(state.max_attachment_bytes));
    }
    Ok((reference, doc, device_id))
}

fn too_large(max: u64) -> ApiError {
    ApiError::attachment(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "附件超过本服务器上限 {max} 字节 / the attachment is larger than this server's limit of {max} bytes"
        ),
    )
}

fn status_json(status: BlobStatus) -> Response {
    axum::Json(status).into_response()
}

/// `GET /v1/attachments/{hash}/upload?doc=…`: how much of the attachment the server holds,
/// so an upload continues where it stopped.
pub async fn upload_status(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
    Query(target): Query<Target>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (reference, doc, device) = access(&state, &headers, &hash, &target).await?;
    let storage = state.storage.clone();
    let stored = blocking(move || storage.attachment_upload_status(&reference, doc, device)).await??;
    Ok(status_json(stored))
}

/// `PUT /v1/attachments/{hash}/upload?doc=…&offset=N` with one chunk as the body and its
/// SHA-256 in `x-chunk-sha256`: stores it if it starts where the stored bytes end.
pub async fn upload_chunk(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
    Query(target): Query<Target>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (reference, doc, device) = access(&state, &headers, &hash, &target).await?;
    let offset = target.offset.ok_or_else(|| {
        ApiError::attachment(
            StatusCode::BAD_REQUEST,
            "no_offset",
            "缺少 offset 参数 / the offset parameter is missing",
        )
    })?;
    let too_large = || {
        ApiError::attachment(
            StatusCode::PAYLOAD_TOO_LARGE,
            "chunk_too_large",
            format!("每块最多 {MAX_CHUNK_BYTES} 字节 / a chunk may carry at most {MAX_CHUNK_BYTES} bytes"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_CHUNK_BYTES) {
        return Err(too_large());
    }
    let chunk = match to_bytes(body, MAX_CHUNK_BYTES).await {
        Ok(chunk) => chunk,
        Err(_) if declared.is_none() => return Err(too_large()),
        // The connection broke mid-chunk: nothing is stored, the device resumes from the status.
        Err(_) => {
            return Err(ApiError::attachment(
                StatusCode::BAD_REQUEST,
                "incomplete_chunk",
                "数据块未收全，未保存 / the chunk did not arrive whole; nothing was stored",
            ));
        }
    };
    let claimed = headers.get(CHUNK_HASH_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if claimed != Some(ContentHash::of(&chunk)) {
        return Err(ApiError::attachment(
            StatusCode::UNPROCESSABLE_ENTITY,
            "chunk_mismatch",
            "数据块与其校验值不符，未保存，请重发 / the chunk does not match its SHA-256; nothing was stored, send it again",
        ));
    }
    let storage = state.storage.clone();
    let quota = state.config.attachment_quota_bytes_per_device;
    let outcome = blocking(move || -> Result<_, ApiError> {
        let outcome = storage.put_attachment_chunk(&reference, doc, device, offset, &chunk, quota, now())?;
        if let ChunkOutcome::Completed(_) = outcome {
            crate::thumbnail::store_for(storage.as_ref(), &reference)?;
        }
        Ok(outcome)
    })
    .await??;
    match outcome {
        ChunkOutcome::Stored(status) | ChunkOutcome::Completed(status) => Ok(status_json(status)),
        ChunkOutcome::WrongOffset(status) => Err(ApiError::attachment(
            StatusCode::CONFLICT,
            "wrong_offset",
            format!(
                "服务器已有 {0} 字节，请从该处续传 / the server holds {0} bytes; continue from there",
                status.received
            ),
        )),
        ChunkOutcome::QuotaExceeded(quota) => Err(ApiError::attachment(
            StatusCode::PAYLOAD_TOO_LARGE,
            "quota_exceeded",
            format!(
                "本设备的附件存储配额（{quota} 字节）已用完，请联系管理员 / this device's attachment quota of {quota} bytes is used up; ask the administrator"
            ),
        )),
        ChunkOutcome::Mismatch => Err(ApiError::attachment(
            StatusCode::UNPROCESSABLE_ENTITY,
            "attachment_mismatch",
            "完整文件与其校验值不符，已丢弃，请从头重传 / the whole file does not match its SHA-256; it was dropped, upload it again from the start",
        )),
    }
}

/// `GET /v1/attachments/{hash}?doc=…`: the bytes of a complete attachment; a `Range:
/// bytes=N-` or `bytes=N-M` header gets those bytes (206), so a cut download continues.
/// `&thumbnail=true` gets the server-made thumbnail instead.
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
    Query(target): Query<Target>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (reference, doc, _) = access(&state, &headers, &hash, &target).await?;
    let storage = state.storage.clone();
    // Served only through a document its bytes were uploaded through: knowing the hash is not
    // enough. Otherwise the answer is the same as for bytes not uploaded yet.
    let not_uploaded = || {
        ApiError::attachment(
            StatusCode::NOT_FOUND,
            "not_uploaded",
            "附件尚未上传完成，请稍后再取 / the attachment has not been uploaded yet; fetch it later",
        )
    };
    let key = reference.hash;
    let servable = {
        let storage = storage.clone();
        blocking(move || storage.attachment_servable(&key, doc)).await??
    };
    if !servable {
        return Err(not_uploaded());
    }
    if target.thumbnail {
        let key = reference.hash;
        let Some((media_type, bytes)) = blocking(move || storage.attachment_thumbnail(&key)).await?? else {
            return Err(ApiError::attachment(
                StatusCode::NOT_FOUND,
                "no_thumbnail",
                "此附件没有缩略图（尚未上传完成或不是图片）/ no thumbnail for this attachment (not uploaded yet, or not an image)",
            ));
        };
        let _ = media_type;
        let mut headers = HeaderMap::new();
        crate::http::served::set_headers(&mut headers, &bytes);
        return Ok((headers, bytes).into_response());
    }
    let size = reference.size;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => Some(parse_range(value, size).ok_or_else(|| {
            ApiError::attachment(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                format!("请求的范围无效（文件共 {size} 字节）/ the range asked for is not valid (the file has {size} bytes)"),
            )
        })?),
    };
    let (from, to) = range.unwrap_or((0, size));
    let key = reference.hash;
    let found = blocking(move || -> Result<_, crate::storage::StorageError> {
        let Some(bytes) = storage.attachment_range(&key, from, to - from)? else { return Ok(None) };
        // The served type comes from the file's first bytes, never from what a phone declared.
        let first = if from == 0 {
            bytes.iter().take(crate::http::served::SNIFF_BYTES as usize).copied().collect()
        } else {
            storage.attachment_range(&key, 0, crate::http::served::SNIFF_BYTES)?.unwrap_or_default()
        };
        Ok(Some((bytes, first)))
    })
    .await??;
    let Some((bytes, first)) = found else {
        return Err(ApiError::attachment(
            StatusCode::NOT_FOUND,
            "not_uploaded",
            "附件尚未上传完成，请稍后再取 / the attachment has not been uploaded yet; fetch it later",
        ));
    };
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    crate::http::served::set_headers(h, &first);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {from}-{}/{size}", to.saturating_sub(1));
        response.headers_mut().insert(header::CONTENT_RANGE, header_value(&value));
    }
    Ok(response)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// Reads `bytes=N-` or `bytes=N-M` (inclusive end) into `[from, to)`; `None` if not satisfiable.
fn parse_range(value: &HeaderValue, size: u64) -> Option<(u64, u64)> {
    let spec = value.to_str().ok()?.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let from: u64 = start.trim().parse().ok()?;
    let to = match end.trim() {
        "" => size,
        end => end.parse::<u64>().ok()?.saturating_add(1).min(size),
    };
    (from < to).then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(parse_range(&v("bytes=10-"), 100), Some((10, 100)));
        assert_eq!(parse_range(&v("bytes=10-19"), 100), Some((10, 20)));
        assert_eq!(parse_range(&v("bytes=90-200"), 100), Some((90, 100)));
        assert_eq!(parse_range(&v("bytes=100-"), 100), None);
        assert_eq!(parse_range(&v("items=1-2"), 100), None);
    }
}

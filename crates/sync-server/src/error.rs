//! `ApiError`: every way an HTTP request can fail, mapped to a status code and a plain
//! message. The internal cause is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use doorstep_core::sync::frame::encode_server;
use doorstep_core::sync::message::{ErrorBody, ErrorCode, ServerMessage};

use crate::storage::{StorageError, SyncFailure};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A protocol-level refusal, answered with an error frame.
    #[error("{code}: {message}")]
    Protocol {
        /// The protocol code.
        code: ErrorCode,
        /// Plain detail for the client.
        message: String,
        /// The document concerned.
        doc: Option<doorstep_core::ids::DocumentId>,
    },
    /// Too many requests (`rate_limited`, 429), with when to retry (also sent as the
    /// `Retry-After` header and, in error frames, `retry_after_secs`).
    #[error("rate_limited: {message}")]
    RateLimited {
        /// Plain detail for the client, Chinese and English.
        message: String,
        /// Seconds to wait before retrying.
        retry_after_secs: u32,
    },
    /// A JSON endpoint's bad input.
    #[error("{0}")]
    BadRequest(String),
    /// A refused attachment transfer (JSON endpoints under `/v1/attachments`): the status, a
    /// stable code for the app, and a message in Chinese and English.
    #[error("{code}: {message}")]
    Attachment {
        /// The status code.
        status: StatusCode,
        /// Stable code (`out_of_scope`, `too_large`, `chunk_mismatch`, …).
        code: &'static str,
        /// Plain message, Chinese then English.
        message: String,
    },
    /// The server failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Protocol { code, .. } => match code {
                ErrorCode::MalformedFrame | ErrorCode::UnsupportedVersion | ErrorCode::MalformedChange => {
                    StatusCode::BAD_REQUEST
                }
                ErrorCode::FrameTooLarge | ErrorCode::DocumentTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::Unauthorized | ErrorCode::DeviceRevoked => StatusCode::UNAUTHORIZED,
                ErrorCode::OutOfScope | ErrorCode::ForgedActor => StatusCode::FORBIDDEN,
                ErrorCode::MissingDependencies => StatusCode::CONFLICT,
                ErrorCode::InvalidDocument => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Attachment { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error as a protocol error frame.
    pub fn frame(&self) -> Vec<u8> {
        let retry_after_secs = self.retry_after_secs();
        let (code, message, doc) = match self {
            ApiError::Protocol { code, message, doc } => (*code, message.clone(), *doc),
            ApiError::RateLimited { message, .. } => (ErrorCode::RateLimited, message.clone(), None),
            ApiError::BadRequest(message) | ApiError::Attachment { message, .. } => {
                (ErrorCode::MalformedFrame, message.clone(), None)
            }
            ApiError::Internal(_) => (ErrorCode::Internal, "the server failed; retry later".to_owned(), None),
        };
        encode_server(&ServerMessage::Error(ErrorBody {
            code,
            message,
            doc: doc.map(doorstep_core::sync::message::wire_id),
            retry_after_secs,
        }))
    }

    /// Seconds to wait before retrying, for a rate limit.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            ApiError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// A rate limit from an abuse refusal, with its bilingual message.
    pub fn limited(refusal: crate::http::abuse::Refusal, message: impl Into<String>) -> Self {
        ApiError::RateLimited {
            message: message.into(),
            retry_after_secs: refusal.retry_after_secs().unwrap_or(1),
        }
    }

    /// A refused attachment transfer.
    pub fn attachment(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Attachment { status, code, message: message.into() }
    }

    /// A protocol error without a document.
    pub fn protocol(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Protocol { code, message: message.into(), doc: None }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        // A full or read-only disk is the operator's to fix; the device keeps its changes and
        // is told so plainly (the write was rolled back whole).
        if let StorageError::Database(cause) = &e {
            let message = match cause.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DiskFull) => Some(
                    "服务器存储空间已满，修改仍保留在手机上，请稍后再同步 / the server's storage is full; your changes stay on the phone, sync again later",
                ),
                Some(rusqlite::ErrorCode::ReadOnly) => Some(
                    "服务器存储暂时只读，修改仍保留在手机上，请稍后再同步 / the server's storage is read-only; your changes stay on the phone, sync again later",
                ),
                _ => None,
            };
            if let Some(message) = message {
                tracing::error!(%cause, "the database cannot be written: free space or make it writable");
                return ApiError::Protocol { code: ErrorCode::Internal, message: message.into(), doc: None };
            }
        }
        ApiError::Internal(e.to_string())
    }
}

impl From<SyncFailure> for ApiError {
    fn from(e: SyncFailure) -> Self {
        match e {
            SyncFailure::Refused { code, message, doc } => ApiError::Protocol { code, message, doc },
            SyncFailure::Storage(e) => e.into(),
        }
    }
}

/// Sync endpoints answer errors with an error frame.
pub struct FrameError(pub ApiError);

impl IntoResponse for FrameError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self.0 {
            tracing::error!(%cause, "sync request failed");
        }
        let status = self.0.status();
        let mut response =
            (status, [("content-type", crate::http::FRAME_CONTENT_TYPE)], self.0.frame()).into_response();
        if let Some(secs) = self.0.retry_after_secs() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was not read: the connection cannot carry another request.
            response.headers_mut().insert("connection", axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

/// JSON endpoints answer errors with `{"error": code, "message": text}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let retry_after = self.retry_after_secs();
        let (code, message) = match &self {
            ApiError::Protocol { code, message, .. } => (code.as_str().to_owned(), message.clone()),
            ApiError::RateLimited { message, .. } => ("rate_limited".to_owned(), message.clone()),
            ApiError::BadRequest(message) => ("bad_request".to_owned(), message.clone()),
            ApiError::Attachment { code, message, .. } => ((*code).to_owned(), message.clone()),
            ApiError::Internal(_) => ("internal".to_owned(), "the server failed; retry later".to_owned()),
        };
        let mut body = serde_json::json!({ "error": code, "message": message });
        let mut response = match retry_after {
            Some(secs) => {
                body["retry_after_secs"] = secs.into();
                (self.status(), axum::Json(body)).into_response()
            }
            None => (self.status(), axum::Json(body)).into_response(),
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

//! `DashboardError`: every way a dashboard request fails, answered with a plain page (or a
//! redirect to sign in). The internal cause is logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::dashboard::html::{Lang, esc, page};
use crate::error::ApiError;
use crate::storage::StorageError;

/// A failed dashboard request.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// No valid session: the browser is sent to the sign-in page.
    #[error("sign-in required")]
    SignInRequired,
    /// The form's CSRF token is missing or wrong.
    #[error("the form's security token is missing or wrong")]
    Csrf,
    /// Outside the account's scope or role.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing here (or not in scope: the two are not told apart).
    #[error("not found")]
    NotFound,
    /// Bad form or query input.
    #[error("{0}")]
    BadRequest(String),
    /// The action is not allowed in the request's current state (lifecycle table).
    #[error("{0}")]
    NotAllowedNow(String),
    /// The server failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StorageError> for DashboardError {
    fn from(e: StorageError) -> Self {
        DashboardError::Internal(e.to_string())
    }
}

impl From<ApiError> for DashboardError {
    fn from(e: ApiError) -> Self {
        DashboardError::Internal(e.to_string())
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let status = match &self {
            DashboardError::SignInRequired => return Redirect::to("/dashboard/sign-in").into_response(),
            DashboardError::Csrf | DashboardError::Forbidden(_) => StatusCode::FORBIDDEN,
            DashboardError::NotFound => StatusCode::NOT_FOUND,
            DashboardError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DashboardError::NotAllowedNow(_) => StatusCode::CONFLICT,
            DashboardError::Internal(cause) => {
                tracing::error!(%cause, "dashboard request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match &self {
            DashboardError::Internal(_) => {
                "服务器出错，请稍后重试 / the server failed; retry later".to_owned()
            }
            DashboardError::Csrf => {
                "表单已失效，请返回刷新后重试 / the form expired or was forged; reload and retry".to_owned()
            }
            DashboardError::NotFound => "未找到 / not found".to_owned(),
            other => other.to_string(),
        };
        let body = format!(
            "<h1>{}</h1><p class=\"error\" id=\"error\">{}</p><p><a href=\"/dashboard/overview\">← 总览 / Overview</a></p>",
            status.as_u16(),
            esc(&message)
        );
        (status, page(Lang::Zh, "错误 / Error", None, &body)).into_response()
    }
}

//! Limits every request body is under, as middleware (issue 16): a body must arrive within
//! the body timeout on every route (not only sync), a declared `Content-Length` over a route's
//! limit is refused with 413 before a byte of the body is read, and routes open to anyone take
//! only so many requests at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::http::AppState;

/// The body did not arrive before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// Cuts a request's body off when it has not arrived whole within the body timeout, counted
/// from the request's start, and answers 408 (closing the connection) when that happened.
pub async fn body_deadline(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let deadline = tokio::time::Instant::now() + state.body_timeout;
    let fired = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let flag = fired.clone();
    let stream = body.into_data_stream();
    let timed = futures_util::stream::unfold(Some(stream), move |stream| {
        let flag = flag.clone();
        async move {
            let mut stream = stream?;
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(_) => {
                    flag.store(true, Ordering::SeqCst);
                    Some((Err(axum::Error::new(BodyTimedOut)), None))
                }
            }
        }
    });
    let response = next.run(Request::from_parts(parts, Body::from_stream(timed))).await;
    if !fired.load(Ordering::SeqCst) {
        return response;
    }
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        "请求正文未按时送达，连接已关闭 / the request body did not arrive in time; the connection is closed",
    )
        .into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body length a request declares, if it declares one that parses.
pub fn declared_length(request: &Request) -> Option<u64> {
    request.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The answer to a body declared larger than `limit` bytes.
pub fn declared_too_large(limit: usize) -> Response {
    let mut response = (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("请求正文超过上限 {limit} 字节 / the request body is larger than the limit of {limit} bytes"),
    )
        .into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Refuses with 413, before reading it, a body whose declared length is over `limit`.
pub async fn refuse_declared_over(limit: usize, request: Request, next: Next) -> Response {
    if declared_length(&request).is_some_and(|len| len > limit as u64) {
        return declared_too_large(limit);
    }
    next.run(request).await
}

/// Lets a request on a route open to anyone in only while one of the server's slots for such
/// requests is free; otherwise refuses it at once with 503.
pub async fn unauthenticated_slot(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_slot) = state.unauthenticated.clone().try_acquire_owned() else {
        let mut response =
            (StatusCode::SERVICE_UNAVAILABLE, "服务器繁忙，请稍后再试 / the server is busy; retry shortly")
                .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    next.run(request).await
}

//! `POST /v1/sync`: one protocol frame in, one out. [`handle_frame`] is shared with the
//! WebSocket, so both transports drive exactly the same logic.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use doorstep_core::sync::frame::{decode_client, encode_server};
use doorstep_core::sync::message::{ClientMessage, ErrorCode, ServerMessage};

use crate::error::{ApiError, FrameError};
use crate::http::{AppState, ChangeNotice, FRAME_CONTENT_TYPE, authenticate, bearer, blocking, now};
use crate::storage::Device;

/// Handles one decoded-or-not client frame for an authenticated device. Returns the reply
/// frame and, for a sync round, the cursor the device will hold after applying it.
pub async fn handle_frame(
    state: &Arc<AppState>,
    device: Device,
    frame: &[u8],
) -> Result<(Vec<u8>, Option<u64>), ApiError> {
    state.metrics.add_bytes_in(frame.len());
    let message = decode_client(frame, state.max_frame_bytes).map_err(|e| ApiError::Protocol {
        code: e.code,
        message: e.message,
        doc: None,
    })?;
    // Every round, manifest and repair costs the device one of its budgeted rounds, and its
    // replies' bytes; a device past its budget (a stolen token looping full syncs) is refused
    // with a retry-after while every other device is served.
    let device_id = device.id;
    if let Err(refusal) = state.abuse.sync_round(device_id, std::time::Instant::now()) {
        tracing::warn!(device = %device_id, %refusal, "sync refused: budget used up");
        return Err(ApiError::limited(
            refusal,
            "同步过于频繁，请稍后再试 / too many sync rounds or bytes from this device; wait and retry",
        ));
    }
    let storage = state.storage.clone();
    let limits = state.limits.clone();
    let (reply, cursor) = match message {
        ClientMessage::Sync(request) => {
            let uploaded: usize = request.uploads.iter().map(|u| u.changes.len()).sum();
            let shipped = state.dashboard.taxonomy.clone();
            let synced = blocking(move || -> Result<_, ApiError> {
                let mut synced = storage.sync(&device, &request, &limits, now())?;
                synced.reply.taxonomy = crate::dashboard::taxonomy::for_device(
                    storage.as_ref(),
                    &shipped,
                    request.taxonomy_version,
                    request.cursor,
                )?;
                Ok(synced)
            })
            .await??;
            state.metrics.sync_round(uploaded);
            let reply = synced.reply;
            if uploaded > 0 {
                // Wake the live connections these changes concern; a send error only means
                // nobody listens.
                let reach = Some(Arc::new(synced.reach));
                let _ = state.changes.send(ChangeNotice { seq: reply.cursor, reach });
            }
            let cursor = reply.cursor;
            (ServerMessage::Sync(reply), Some(cursor))
        }
        ClientMessage::Manifest => {
            (ServerMessage::Manifest(blocking(move || storage.manifest(&device)).await??), None)
        }
        ClientMessage::Repair(messages) => {
            let replies = blocking(move || storage.repair(&device, &messages, &limits, now())).await??;
            let _ = state.changes.send(ChangeNotice::to_everyone(0));
            (ServerMessage::Repair(replies), None)
        }
    };
    let bytes = encode_server(&reply);
    state.metrics.add_bytes_out(bytes.len());
    state.abuse.sync_bytes(device_id, bytes.len());
    Ok((bytes, cursor))
}

/// `POST /v1/sync`.
pub async fn sync(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let device = authenticate(&state, bearer(&headers)).await?;
        // A body declared larger than a frame may be is refused before a byte of it is read.
        let declared = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > state.max_frame_bytes as u64) {
            return Err(ApiError::protocol(
                ErrorCode::FrameTooLarge,
                format!("the request is larger than {} bytes", state.max_frame_bytes),
            ));
        }
        // A body trickled in byte by byte (a slow client) is cut off after the body timeout.
        let frame = tokio::time::timeout(state.body_timeout, to_bytes(body, state.max_frame_bytes))
            .await
            .map_err(|_| {
                ApiError::protocol(ErrorCode::MalformedFrame, "the request body did not arrive in time")
            })?
            .map_err(|_| {
                ApiError::protocol(
                    ErrorCode::FrameTooLarge,
                    format!("the request is larger than {} bytes, or was cut off", state.max_frame_bytes),
                )
            })?;
        handle_frame(&state, device, &frame).await
    }
    .await;
    match result {
        Ok((bytes, _)) => ([("content-type", FRAME_CONTENT_TYPE)], bytes).into_response(),
        Err(e) => {
            state.metrics.error(&e);
            FrameError(e).into_response()
        }
    }
}

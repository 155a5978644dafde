//! `GET /v1/ws`: the same frames as `POST /v1/sync`, over one WebSocket, plus live pushes:
//! when changes are committed, every connection whose device has done a sync round is sent
//! what it now lacks. A revoked device's socket is sent `device_revoked` and closed at once.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use doorstep_core::sync::frame::encode_server;
use doorstep_core::sync::message::{ErrorCode, ServerMessage};
use tokio::sync::broadcast::error::RecvError;

use crate::error::{ApiError, FrameError};
use crate::http::{AppState, authenticate, bearer, blocking, now, sync::handle_frame};
use crate::scope::Scope;
use crate::storage::Device;

/// Read buffer of one WebSocket connection.
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Upgrades an authenticated request to a WebSocket.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let token = bearer(&headers);
    let device = match authenticate(&state, token.clone()).await {
        Ok(device) => device,
        Err(e) => return FrameError(e).into_response(),
    };
    // Many sockets on one token (a leaked token, a runaway app) are refused past the limit.
    let slot = match state.abuse.connect(device.id) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(device = %device.id, %refusal, "websocket refused");
            return FrameError(ApiError::protocol(
                ErrorCode::RateLimited,
                format!("连接过多 / {refusal}; close one and retry"),
            ))
            .into_response();
        }
    };
    ws
        // Room above the frame limit, so an oversized frame gets its protocol error rather
        // than a closed socket; past this the socket closes.
        .max_message_size(state.max_frame_bytes.saturating_add(1024 * 1024))
        // An idle phone's socket should cost little: tungstenite's default 128 KiB read and
        // write buffers per connection made 10,000 held sockets cost ~1.4 GB. Frames larger
        // than these still pass; the buffers grow while one is read.
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            serve(state, device, token.unwrap_or_default(), socket).await;
            drop(slot);
        })
}

async fn send_error(socket: &mut WebSocket, error: &ApiError) -> bool {
    socket.send(Message::Binary(error.frame().into())).await.is_ok()
}

async fn serve(state: Arc<AppState>, device: Device, token: String, mut socket: WebSocket) {
    state.metrics.websocket(true);
    let mut changes = state.changes.subscribe();
    let mut revoked = state.revoked.subscribe();
    let mut stopping = state.stopping.subscribe();
    let device_id = device.id;
    // The device's scope as last authenticated: decides which change notices concern it.
    let mut scope = device.scope.clone();
    let mut cursor: Option<u64> = None;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let frame = match incoming {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(Message::Text(_))) => {
                        let e = ApiError::protocol(ErrorCode::MalformedFrame, "frames are binary messages");
                        if !send_error(&mut socket, &e).await { break; }
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                // Re-check the token on every frame: a revoked device stops at once.
                let device = match authenticate(&state, Some(token.clone())).await {
                    Ok(device) => device,
                    Err(e) => { send_error(&mut socket, &e).await; break; }
                };
                scope = device.scope.clone();
                match handle_frame(&state, device, &frame).await {
                    Ok((reply, new_cursor)) => {
                        if new_cursor.is_some() { cursor = new_cursor; }
                        if socket.send(Message::Binary(reply.into())).await.is_err() { break; }
                    }
                    Err(e) => {
                        state.metrics.error(&e);
                        if !send_error(&mut socket, &e).await { break; }
                    }
                }
            }
            notice = changes.recv() => {
                let (reach, seq) = match notice {
                    Err(RecvError::Closed) => break,
                    // Missed notices: whom they concerned and how far they went is unknown.
                    Err(RecvError::Lagged(_)) => (None, 0),
                    Ok(notice) => (notice.reach, notice.seq),
                };
                let Some(from) = cursor else { continue };
                // This connection has already answered up to there: its own upload, or changes
                // an earlier push covered.
                if seq != 0 && seq <= from { continue; }
                // Changes outside this device's scope wake nothing: with thousands of phones
                // connected, one upload must not cost a storage round per connection.
                if reach.is_some_and(|r| !r.concerns(&scope)) { continue; }
                match push(&state, &token, from).await {
                    Ok((Some((frame, next)), now_scope)) => {
                        scope = now_scope;
                        cursor = Some(next);
                        if socket.send(Message::Binary(frame.into())).await.is_err() { break; }
                    }
                    Ok((None, now_scope)) => scope = now_scope,
                    Err(e) => { send_error(&mut socket, &e).await; break; }
                }
            }
            _ = stopping.changed() => break,
            gone = revoked.recv() => {
                match gone {
                    Ok(id) if id == device_id => {
                        let e = ApiError::protocol(ErrorCode::DeviceRevoked, "this device was revoked; delete its local data");
                        send_error(&mut socket, &e).await;
                        break;
                    }
                    Err(RecvError::Closed) => break,
                    _ => {}
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    state.metrics.websocket(false);
}

/// A pushed frame and the cursor after it.
type Pushed = Option<(Vec<u8>, u64)>;

/// What the device lacks since `cursor`, as a frame, if anything; with the device's scope as
/// authenticated now.
async fn push(state: &Arc<AppState>, token: &str, cursor: u64) -> Result<(Pushed, Scope), ApiError> {
    let device = authenticate(state, Some(token.to_owned())).await?;
    let scope = device.scope.clone();
    let storage = state.storage.clone();
    let limits = state.limits.clone();
    state.metrics.push_round();
    let reply = blocking(move || storage.push(&device, cursor, &limits, now())).await??;
    if reply.docs.is_empty() && reply.purge.is_empty() {
        return Ok((None, scope));
    }
    let next = reply.cursor;
    let frame = encode_server(&ServerMessage::Push(reply));
    state.metrics.add_bytes_out(frame.len());
    Ok((Some((frame, next)), scope))
}

//! `POST /v1/enrol`: a device exchanges a single-use enrolment code for its token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::{AppState, blocking, now};
use crate::storage::{EnrolError, Enrolled};

/// Largest enrolment request body: a code, an actor id and a device name fit in far less.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The enrolment request body.
#[derive(Deserialize)]
pub struct EnrolRequest {
    /// The code as typed (case, spaces and dashes do not matter).
    pub code: String,
    /// The device's Automerge actor id, hex.
    pub actor: String,
    /// A name for the device ("王芳的手机").
    #[serde(default)]
    pub device_name: String,
    /// When the replica was enrolled before with this server: that device's token, as proof
    /// that the new device replaces it (PROTOCOL §2.4).
    #[serde(default)]
    pub previous_token: Option<String>,
}

/// Enrols a device.
///
/// Failed attempts are counted per client address (behind a trusted proxy, the address it
/// forwarded for) and county-wide. An address past its limit is refused with `rate_limited`
/// (even a right code, so a guesser learns nothing); past the county's budget every attempt
/// waits its turn, so guessing from many addresses is slowed down while real codes still enrol.
pub async fn enrol(
    State(state): State<Arc<AppState>>,
    extensions: Extensions,
    headers: HeaderMap,
    Json(request): Json<EnrolRequest>,
) -> Result<Json<Enrolled>, ApiError> {
    let address = crate::http::client_ip(&state, &extensions, &headers);
    let refused = |refusal| {
        tracing::warn!(?address, "enrolment refused: too many failed attempts");
        ApiError::limited(
            refusal,
            "注册尝试失败次数过多，请稍后再试 / too many failed enrolment attempts; wait and retry",
        )
    };
    match state.abuse.may_enrol(address, std::time::Instant::now()) {
        Ok(wait) if wait.is_zero() => {}
        Ok(wait) => tokio::time::sleep(wait).await,
        Err(refusal) => return Err(refused(refusal)),
    }
    // One code at a time per address, checked again in the turn: parallel guesses from one
    // address are counted one by one, while phones at other addresses do not wait.
    let _turn = state.abuse.enrol_turn(address).await;
    if let Err(refusal) = state.abuse.recheck_enrol(address, std::time::Instant::now()) {
        return Err(refused(refusal));
    }
    let code = crate::auth::normalize_code(&request.code);
    if code.is_empty() || code.len() > 32 {
        state.abuse.enrol_failed(address, std::time::Instant::now());
        return Err(ApiError::BadRequest("enrolment code is missing or malformed".into()));
    }
    let code_hash = crate::auth::hash_secret(&code);
    let token = crate::auth::new_token().map_err(|e| ApiError::Internal(format!("randomness: {e}")))?;
    let previous = request.previous_token.as_deref().map(|t| crate::auth::hash_secret(t.trim()));
    let storage = state.storage.clone();
    let result = blocking(move || {
        storage.enrol_replacing(
            &code_hash,
            &request.actor,
            &request.device_name,
            &token,
            previous.as_ref(),
            now(),
        )
    })
    .await?;
    match result {
        Ok(enrolled) => {
            tracing::info!(device = %enrolled.device_id, member = %enrolled.member_id, "device enrolled");
            Ok(Json(enrolled))
        }
        Err(EnrolError::InvalidCode) => {
            state.abuse.enrol_failed(address, std::time::Instant::now());
            Err(ApiError::Protocol {
                code: doorstep_core::sync::message::ErrorCode::Unauthorized,
                message: "the enrolment code is not valid (unknown, used or expired)".into(),
                doc: None,
            })
        }
        Err(EnrolError::BadActor) => {
            Err(ApiError::BadRequest("the device's actor id is not acceptable".into()))
        }
        Err(EnrolError::PreviousRevoked) => Err(ApiError::Protocol {
            code: doorstep_core::sync::message::ErrorCode::DeviceRevoked,
            message: "the device this replica was has been revoked".into(),
            doc: None,
        }),
        Err(EnrolError::PreviousOtherMember) => Err(ApiError::BadRequest(
            "this replica is another member's device: sign out (wipe) before enrolling it for someone else"
                .into(),
        )),
        Err(EnrolError::Storage(e)) => Err(e.into()),
    }
}

//! Staff sign-in, sessions and CSRF protection.
//!
//! - Passwords are checked against argon2id hashes, outside the storage slots and at most two
//!   at a time; an unknown login costs the same work as a wrong password, is counted and
//!   locked the same way, and gets byte for byte the same answers.
//! - After [`MAX_FAILURES`] consecutive failures an account is locked for [`LOCK_MINUTES`];
//!   each attempt is counted before its password is checked (one atomic statement), so
//!   parallel guesses check at most [`MAX_FAILURES`] passwords. Failures are also limited per
//!   client address.
//! - The session cookie (`dsk_session`) is 256 random bits, stored only as its SHA-256, and sent
//!   `HttpOnly; SameSite=Strict` (plus `Secure` over TLS, or when a trusted reverse proxy says
//!   with `X-Forwarded-Proto: https` that it terminated TLS: [`Https`]).
//! - Every form POST carries the session's CSRF token; the sign-in form, which has no session
//!   yet, carries a token that must match a pre-session cookie (double submit).

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth;
use crate::dashboard::error::DashboardError;
use crate::dashboard::html::{Header, Lang, cookie, esc, page};
use crate::http::{AppState, blocking, now};
use crate::scope::Scope;
use crate::storage::accounts::{self, Reservation};
use crate::storage::dashboard::NewSession;

/// Consecutive failed sign-ins that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
pub const LOCK_MINUTES: i64 = 15;
/// How long a session lasts.
pub const SESSION_HOURS: u32 = 12;

const SESSION_COOKIE: &str = "dsk_session";
const PRE_SESSION_COOKIE: &str = "dsk_pre";

/// A signed-in staff member, with their scope as of this request.
#[derive(Clone, Debug)]
pub struct Staff {
    /// The member's name.
    pub name: String,
    /// Login name.
    pub login: String,
    /// What they may see and do.
    pub scope: Scope,
    /// The session's CSRF token.
    pub csrf: String,
    /// The page language.
    pub lang: Lang,
    session_hash: [u8; 32],
}

impl Staff {
    /// The page header for this staff member.
    pub fn header(&self) -> Header<'_> {
        Header { name: &self.name, role: self.scope.role, csrf: &self.csrf }
    }

    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), DashboardError> {
        if auth::same_secret(token, &self.csrf) { Ok(()) } else { Err(DashboardError::Csrf) }
    }
}

/// `?lang=` on any dashboard page.
#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

fn lang_of(parts: &Parts) -> Lang {
    let query: Option<Query<LangQuery>> = Query::try_from_uri(&parts.uri).ok();
    Lang::from_request(&parts.headers, query.as_ref().and_then(|q| q.lang.as_deref()))
}

impl FromRequestParts<Arc<AppState>> for Staff {
    type Rejection = DashboardError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let lang = lang_of(parts);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(DashboardError::SignInRequired);
        };
        let hash = auth::hash_secret(&token);
        let storage = state.storage.clone();
        let session = blocking(move || storage.staff_session(&hash, now())).await??;
        let Some(session) = session else { return Err(DashboardError::SignInRequired) };
        Ok(Staff {
            name: session.name,
            login: session.login,
            scope: session.scope,
            csrf: session.csrf,
            lang,
            session_hash: hash,
        })
    }
}

/// Whether the browser reached the dashboard over HTTPS: the server itself speaks TLS, or the
/// request comes from one of the configured trusted proxies
/// ([`crate::config::from_trusted_proxy`]) and carries `X-Forwarded-Proto: https`. From
/// anyone else the header is ignored.
pub struct Https(pub bool);

impl FromRequestParts<Arc<AppState>> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        if state.dashboard.secure_cookies {
            return Ok(Https(true));
        }
        let peer =
            parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let trusted =
            peer.is_some_and(|ip| crate::config::from_trusted_proxy(ip, &state.config.trusted_proxies));
        let forwarded_https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        Ok(Https(trusted && forwarded_https))
    }
}

/// The page language of a request without a session.
pub struct PageLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLang(lang_of(parts)))
    }
}

/// A `Set-Cookie` value for the dashboard: HttpOnly, SameSite=Strict, and Secure over TLS.
fn cookie_header(secure: bool, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("dsk_invalid=1"))
}

/// Sets the language cookie when `?lang=` asked for one, so the choice sticks.
pub fn lang_cookie(lang: Lang) -> (header::HeaderName, HeaderValue) {
    let value = if lang == Lang::En { "en" } else { "zh" };
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "dsk_lang={value}; Path=/dashboard; SameSite=Strict; Max-Age=31536000"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("dsk_lang=zh")),
    )
}

fn sign_in_page(lang: Lang, csrf: &str, message: Option<&str>) -> String {
    let message =
        message.map(|m| format!("<p class=\"error\" id=\"error\">{}</p>", esc(m))).unwrap_or_default();
    format!(
        "<form class=\"signin\" method=\"post\" action=\"/dashboard/sign-in\">\
         <h1>{}</h1>{message}\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>{}<input id=\"login\" name=\"login\" autocomplete=\"username\" required></label>\
         <label>{}<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button class=\"primary\" id=\"submit\">{}</button></form>",
        lang.t("工作人员登录", "Staff sign-in"),
        esc(csrf),
        lang.t("账号", "Login"),
        lang.t("密码", "Password"),
        lang.t("登录", "Sign in"),
    )
}

/// `GET /dashboard/sign-in`: the form, with a fresh pre-session token.
pub async fn sign_in_form(
    Https(secure): Https,
    PageLang(lang): PageLang,
) -> Result<Response, DashboardError> {
    let token = auth::new_secret().map_err(|e| DashboardError::Internal(e.to_string()))?;
    let body = sign_in_page(lang, &token, None);
    let mut response = page(lang, lang.t("登录", "Sign in"), None, &body).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie_header(secure, PRE_SESSION_COOKIE, &token, 3600));
    let (name, value) = lang_cookie(lang);
    response.headers_mut().append(name, value);
    Ok(response)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignInForm {
    login: String,
    password: String,
    csrf: String,
}

/// What a sign-in attempt does after its reservation.
enum Attempt {
    /// Refused unchecked: locked until then.
    Locked(doorstep_core::time::Timestamp),
    /// Check the password (against a dummy hash when `None`); `last` before the lock.
    Check(Option<crate::storage::dashboard::StaffAccount>, bool),
}

/// The login as looked up and counted: a login longer than any account's (64 bytes) is
/// replaced by its hash, so an unknown one's row stays small.
fn unknown_login_key(login: &str) -> String {
    if login.len() <= 64 {
        login.to_owned()
    } else {
        auth::hash_secret(login).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `POST /dashboard/sign-in`.
///
/// In order: the client address's failures (429 past `sign_in_failures_per_address`); the
/// attempt reserved (counted as a failure and the lock set at [`MAX_FAILURES`], in one
/// statement, before any password is checked, so parallel guesses cannot check more); the
/// password checked outside the storage slots, at most two at a time ([`PasswordChecks`]);
/// success resets the count. An unknown (or disabled) login is counted and locked the same way
/// (`unknown_sign_ins`) and checked against a dummy hash, so every answer is byte for byte the answer a
/// known login gets.
///
/// [`PasswordChecks`]: crate::http::passwords::PasswordChecks
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    Https(secure): Https,
    PageLang(lang): PageLang,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, DashboardError> {
    let pre = cookie(&headers, PRE_SESSION_COOKIE).unwrap_or("");
    if pre.is_empty() || !auth::same_secret(pre, &form.csrf) {
        return Err(DashboardError::Csrf);
    }
    let refuse = |status: StatusCode, message: &str, retry_after: Option<u32>| {
        let body = sign_in_page(lang, &form.csrf, Some(message));
        let mut response = (status, page(lang, lang.t("登录", "Sign in"), None, &body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    };
    let address = crate::http::client_ip(&state, &extensions, &headers);
    if let Err(refusal) = state.abuse.may_sign_in(address, std::time::Instant::now()) {
        let retry = refusal.retry_after_secs();
        let minutes = retry.unwrap_or(60) / 60 + 1;
        tracing::warn!(?address, "dashboard sign-in refused: too many failures from this address");
        return Ok(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &match lang {
                Lang::Zh => format!("此地址登录失败次数过多，请 {minutes} 分钟后再试"),
                Lang::En => {
                    format!("Too many failed sign-ins from this address: try again in {minutes} minutes")
                }
            },
            retry,
        ));
    }
    let busy = || {
        refuse(
            StatusCode::TOO_MANY_REQUESTS,
            lang.t("登录人数过多，请稍后再试", "Too many sign-ins at once: try again shortly"),
            Some(1),
        )
    };
    // Admitted (or refused at once), then in one of the few turns: the reservation, the hash
    // and the session all run outside the storage slots devices sync in.
    let Ok(admission) = state.abuse.passwords.admit() else { return Ok(busy()) };
    let Ok(turn) = admission.turn().await else { return Ok(busy()) };
    let login = form.login.trim().to_owned();
    let at = now();
    let lock_ms = LOCK_MINUTES * 60_000;
    let storage = state.storage.clone();
    let reserved = unknown_login_key(&login);
    let reservation = turn
        .run(move || accounts::reserve_sign_in(storage.as_ref(), &reserved, at, MAX_FAILURES, lock_ms))
        .await
        .map_err(|e| DashboardError::Internal(e.to_string()))??;
    let attempt = match reservation {
        Reservation::Unknown { locked_until: Some(until), .. } => Attempt::Locked(until),
        Reservation::Unknown { locked_until: None, last } => Attempt::Check(None, last),
        Reservation::Locked { until } => Attempt::Locked(until),
        Reservation::Check { account, last } => Attempt::Check(Some(account), last),
    };
    let (account, last) = match attempt {
        Attempt::Locked(until) => {
            state.abuse.sign_in_failed(address, std::time::Instant::now());
            let minutes = (until.millis() - at.millis()).max(0) / 60_000 + 1;
            return Ok(refuse(
                StatusCode::UNAUTHORIZED,
                &match lang {
                    Lang::Zh => format!("登录失败次数过多，账号已锁定，请 {minutes} 分钟后再试"),
                    Lang::En => {
                        format!("Too many failed sign-ins: the account is locked for {minutes} more minutes")
                    }
                },
                None,
            ));
        }
        Attempt::Check(account, last) => (account, last),
    };
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let Ok(matches) = turn.verify(form.password.clone(), stored).await else { return Ok(busy()) };
    let account = match account {
        Some(account) if matches => account,
        known => {
            state.abuse.sign_in_failed(address, std::time::Instant::now());
            tracing::warn!(login = %login, known = known.is_some(), locked = last, "dashboard sign-in failed");
            return Ok(refuse(
                StatusCode::UNAUTHORIZED,
                if last {
                    lang.t(
                        "登录失败次数过多，账号已锁定 15 分钟",
                        "Too many failed sign-ins: the account is locked for 15 minutes",
                    )
                } else {
                    lang.t("账号或密码错误", "Wrong login or password")
                },
                None,
            ));
        }
    };
    let token = auth::new_secret().map_err(|e| DashboardError::Internal(e.to_string()))?;
    let csrf = auth::new_secret().map_err(|e| DashboardError::Internal(e.to_string()))?;
    let session =
        NewSession { hash: auth::hash_secret(&token), csrf, expires_at: at.plus_hours(SESSION_HOURS) };
    let id = account.id.clone();
    let storage = state.storage.clone();
    turn.run(move || storage.record_sign_in(&id, 0, None, Some(&session), at))
        .await
        .map_err(|e| DashboardError::Internal(e.to_string()))??;
    drop(turn);
    tracing::info!(login = %account.login, "dashboard sign-in");
    let mut response = Redirect::to("/dashboard/overview").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie_header(secure, SESSION_COOKIE, &token, i64::from(SESSION_HOURS) * 3600),
    );
    headers.append(header::SET_COOKIE, cookie_header(secure, PRE_SESSION_COOKIE, "", 0));
    Ok(response)
}

/// `GET /dashboard/account`: the signed-in user's own account (change the password).
pub async fn account_page(staff: Staff) -> Result<Response, DashboardError> {
    Ok(account_view(&staff, None).into_response())
}

fn account_view(staff: &Staff, notice: Option<(&str, bool)>) -> axum::response::Html<String> {
    let lang = staff.lang;
    let notice = notice
        .map(|(text, ok)| {
            let (class, id) = if ok { ("notice", "notice") } else { ("error", "error") };
            format!("<p class=\"{class}\" id=\"{id}\">{}</p>", esc(text))
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>{}</h1>{notice}<p class=\"muted\">{}</p>\
         <form class=\"signin\" method=\"post\" action=\"/dashboard/account/password\" id=\"change-password\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>{}<input id=\"old-password\" name=\"old_password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <label>{}<input id=\"new-password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" required></label>\
         <button class=\"primary\" id=\"change\">{}</button></form>",
        lang.t("我的账号", "My account"),
        esc(&staff.login),
        esc(&staff.csrf),
        lang.t("原密码", "Current password"),
        lang.t("新密码（至少 8 个字符）", "New password (at least 8 characters)"),
        lang.t("修改密码", "Change password"),
    );
    page(lang, lang.t("我的账号", "My account"), Some(&staff.header()), &body)
}

/// The change-password form's fields.
#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    old_password: String,
    new_password: String,
}

/// `POST /dashboard/account/password`: a signed-in user changes their own password (the
/// current one first). Their other sessions end; this one stays.
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Form(form): Form<PasswordForm>,
) -> Result<Response, DashboardError> {
    staff.check_csrf(&form.csrf)?;
    let lang = staff.lang;
    let busy = || {
        DashboardError::NotAllowedNow(
            "登录人数过多，请稍后再试 / too many sign-ins at once; retry shortly".into(),
        )
    };
    if let Err(why) = accounts::check_password_policy(&staff.login, &form.new_password) {
        return Ok((StatusCode::BAD_REQUEST, account_view(&staff, Some((&why, false)))).into_response());
    }
    let storage = state.storage.clone();
    let login = staff.login.clone();
    let account = blocking(move || storage.staff_account(&login)).await??;
    let stored = account.map(|a| a.password_hash);
    if !state.abuse.passwords.verify(form.old_password, stored).await.map_err(|_| busy())? {
        let message = lang.t("原密码不正确", "The current password is wrong");
        return Ok((StatusCode::BAD_REQUEST, account_view(&staff, Some((message, false)))).into_response());
    }
    let hash = state
        .abuse
        .passwords
        .hash(form.new_password)
        .await
        .map_err(|_| busy())?
        .map_err(|e| DashboardError::Internal(e.to_string()))?;
    let storage = state.storage.clone();
    let (login, keep) = (staff.login.clone(), staff.session_hash);
    blocking(move || accounts::set_password(storage.as_ref(), &login, &hash, Some(&keep), now())).await??;
    tracing::info!(login = %staff.login, "dashboard password changed by its owner");
    let message = lang
        .t("密码已修改，其他设备上的登录已退出。", "Password changed; your other sessions were signed out.");
    Ok(account_view(&staff, Some((message, true))).into_response())
}

/// A form that carries only the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The token.
    pub csrf: String,
}

/// `POST /dashboard/sign-out`: ends the session and clears the cookie.
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    Https(secure): Https,
    staff: Staff,
    Form(form): Form<CsrfForm>,
) -> Result<Response, DashboardError> {
    staff.check_csrf(&form.csrf)?;
    let storage = state.storage.clone();
    let hash = staff.session_hash;
    blocking(move || storage.end_staff_session(&hash)).await??;
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie_header(secure, SESSION_COOKIE, "", 0));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_over_tls() {
        let plain = cookie_header(false, SESSION_COOKIE, "abc", 60);
        assert_eq!(plain, "dsk_session=abc; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=60");
        let tls = cookie_header(true, SESSION_COOKIE, "abc", 60);
        assert!(tls.to_str().expect("ascii").ends_with("; Secure"));
    }
}

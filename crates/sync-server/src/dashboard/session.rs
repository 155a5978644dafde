//! Staff sign-in, sessions and CSRF protection.
//!
//! - Passwords are checked against argon2id hashes; an unknown login costs the same work as a
//!   wrong password, and both get the same answer.
//! - After [`MAX_FAILURES`] consecutive failures an account is locked for [`LOCK_MINUTES`].
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
        let trusted = peer.is_some_and(|ip| crate::config::from_trusted_proxy(&state.config, ip));
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

/// `POST /dashboard/sign-in`.
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    Https(secure): Https,
    PageLang(lang): PageLang,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, DashboardError> {
    let pre = cookie(&headers, PRE_SESSION_COOKIE).unwrap_or("");
    if pre.is_empty() || !auth::same_secret(pre, &form.csrf) {
        return Err(DashboardError::Csrf);
    }
    let refuse = |message: &str| {
        let body = sign_in_page(lang, &form.csrf, Some(message));
        (StatusCode::UNAUTHORIZED, page(lang, lang.t("登录", "Sign in"), None, &body)).into_response()
    };
    let login = form.login.trim().to_owned();
    let storage = state.storage.clone();
    let account = blocking(move || storage.staff_account(&login)).await??;
    let at = now();
    if let Some(until) = account.as_ref().and_then(|a| a.locked_until).filter(|until| *until > at) {
        let minutes = (until.millis() - at.millis()) / 60_000 + 1;
        return Ok(refuse(&match lang {
            Lang::Zh => format!("登录失败次数过多，账号已锁定，请 {minutes} 分钟后再试"),
            Lang::En => format!("Too many failed sign-ins: the account is locked for {minutes} more minutes"),
        }));
    }
    // An unknown login does the same hashing work as a wrong password.
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let password = form.password;
    let matches =
        blocking(move || auth::verify_password(&password, stored.as_deref().unwrap_or_else(|| dummy_hash())))
            .await?;
    let Some(account) = account else {
        return Ok(refuse(lang.t("账号或密码错误", "Wrong login or password")));
    };
    let storage = state.storage.clone();
    if !matches {
        let failures = account.failed_attempts.saturating_add(1);
        let (failures, locked) = if failures >= MAX_FAILURES {
            (0, Some(doorstep_core::time::Timestamp(at.millis() + LOCK_MINUTES * 60_000)))
        } else {
            (failures, None)
        };
        tracing::warn!(login = %account.login, failures, locked = locked.is_some(), "dashboard sign-in failed");
        let id = account.id.clone();
        blocking(move || storage.record_sign_in(&id, failures, locked, None, at)).await??;
        return Ok(refuse(if locked.is_some() {
            lang.t(
                "登录失败次数过多，账号已锁定 15 分钟",
                "Too many failed sign-ins: the account is locked for 15 minutes",
            )
        } else {
            lang.t("账号或密码错误", "Wrong login or password")
        }));
    }
    let token = auth::new_secret().map_err(|e| DashboardError::Internal(e.to_string()))?;
    let csrf = auth::new_secret().map_err(|e| DashboardError::Internal(e.to_string()))?;
    let session =
        NewSession { hash: auth::hash_secret(&token), csrf, expires_at: at.plus_hours(SESSION_HOURS) };
    let id = account.id.clone();
    blocking(move || storage.record_sign_in(&id, 0, None, Some(&session), at)).await??;
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

/// An argon2id hash of a random password nobody knows, verified against when the login is
/// unknown so that both failures take the same time.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        auth::new_secret().ok().and_then(|secret| auth::hash_password(&secret).ok()).unwrap_or_default()
    })
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

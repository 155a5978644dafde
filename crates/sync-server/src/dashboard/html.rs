//! Server-rendered HTML: escaping, the page layout, the language switch, and the display of
//! dates and domain labels in Chinese or English. Every value from data goes through [`esc`].

use std::fmt::Write;

use axum::http::HeaderMap;
use axum::response::Html;
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{ResidentTag, Satisfaction, Taxonomy, Urgency, VisitKind};
use doorstep_core::time::Timestamp;

use crate::scope::Role;

/// The page language: Simplified Chinese by default, English on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// 简体中文 (default).
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The language asked for by `?lang=` (wins) or the `dsk_lang` cookie.
    pub fn from_request(headers: &HeaderMap, query_lang: Option<&str>) -> Self {
        match query_lang.or_else(|| cookie(headers, "dsk_lang")) {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    /// Picks the Chinese or English text.
    pub const fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// The `lang` attribute and cookie value.
    pub const fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// A request status's label.
    pub fn status(self, status: RequestStatus) -> &'static str {
        match self {
            Lang::Zh => status.label_zh(),
            Lang::En => match status {
                RequestStatus::Raised => "Raised",
                RequestStatus::Accepted => "Accepted",
                RequestStatus::Discussing => "Discussing",
                RequestStatus::Dispatched => "Dispatched",
                RequestStatus::Assigned => "Assigned",
                RequestStatus::InProgress => "In progress",
                RequestStatus::Resolved => "Resolved",
                RequestStatus::FollowedUp => "Followed up",
                RequestStatus::Reopened => "Reopened",
                RequestStatus::Closed => "Closed",
                RequestStatus::Cancelled => "Cancelled",
            },
        }
    }

    /// A resident tag's label.
    pub fn tag(self, tag: ResidentTag) -> &'static str {
        match self {
            Lang::Zh => tag.label_zh(),
            Lang::En => match tag {
                ResidentTag::ElderlyAlone => "elderly alone",
                ResidentTag::Disabled => "disabled",
                ResidentTag::LowIncome => "low income",
                ResidentTag::LeftBehindChild => "left-behind child",
                ResidentTag::PartyMember => "party member",
                ResidentTag::SeriousIllness => "serious illness",
                ResidentTag::Veteran => "veteran",
            },
        }
    }

    /// A role's label.
    pub fn role(self, role: Role) -> &'static str {
        match self {
            Lang::Zh => role.label_zh(),
            Lang::En => match role {
                Role::GridWorker => "grid worker",
                Role::Volunteer => "volunteer",
                Role::DepartmentStaff => "department staff",
                Role::Supervisor => "supervisor",
                Role::Admin => "administrator",
            },
        }
    }

    /// A visit kind's label.
    pub fn visit_kind(self, kind: VisitKind) -> &'static str {
        match kind {
            VisitKind::Routine => self.t("日常走访", "routine"),
            VisitKind::FollowUp => self.t("回访", "follow-up"),
            VisitKind::Care => self.t("关爱走访", "care"),
            VisitKind::SafetyCheck => self.t("安全检查", "safety check"),
        }
    }

    /// An urgency's label.
    pub fn urgency(self, urgency: Urgency) -> &'static str {
        match urgency {
            Urgency::Normal => self.t("一般", "normal"),
            Urgency::Urgent => self.t("紧急", "urgent"),
            Urgency::Critical => self.t("特急", "critical"),
        }
    }

    /// A follow-up answer's label.
    pub fn satisfaction(self, satisfaction: Satisfaction) -> &'static str {
        match satisfaction {
            Satisfaction::Satisfied => self.t("满意", "satisfied"),
            Satisfaction::BasicallySatisfied => self.t("基本满意", "basically satisfied"),
            Satisfaction::Unsatisfied => self.t("不满意", "unsatisfied"),
        }
    }

    /// A category's name, or its code when the taxonomy does not know it.
    pub fn category(self, taxonomy: &Taxonomy, code: &str) -> String {
        match taxonomy.category(code) {
            Ok(c) => (if self == Lang::Zh { &c.name_zh } else { &c.name_en }).clone(),
            Err(_) => code.to_owned(),
        }
    }

    /// A department's name, or its code when the taxonomy does not know it.
    pub fn department(self, taxonomy: &Taxonomy, code: &str) -> String {
        match taxonomy.department(code) {
            Some(d) => (if self == Lang::Zh { &d.name_zh } else { &d.name_en }).clone(),
            None => code.to_owned(),
        }
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn url_value(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// China Standard Time (UTC+8, no daylight saving): the dashboard's calendar.
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A date as `2026-11-23` (China time).
pub fn date(at: Timestamp) -> String {
    let (y, m, d) = civil((at.millis() + CST_OFFSET_MS).div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A date and time as `2026-11-23 14:05` (China time).
pub fn date_time(at: Timestamp) -> String {
    let local = at.millis() + CST_OFFSET_MS;
    let minutes = local.div_euclid(60_000).rem_euclid(1440);
    format!("{} {:02}:{:02}", date(at), minutes / 60, minutes % 60)
}

/// Who is signed in, for the page header.
pub struct Header<'a> {
    /// The member's name.
    pub name: &'a str,
    /// Their role.
    pub role: Role,
    /// The session's CSRF token (for the sign-out form).
    pub csrf: &'a str,
}

const STYLE: &str = "
*{box-sizing:border-box}body{margin:0;font-family:system-ui,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;color:#1d2433;background:#f4f6f9;font-size:15px}
header{background:#b3261e;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.6rem 1.2rem;align-items:center}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:1.1rem}
header nav{display:flex;flex-wrap:wrap;gap:.3rem 1rem}header .me{margin-left:auto;display:flex;gap:.6rem;align-items:center}
header form{margin:0}header button{background:none;border:1px solid #fff;color:#fff;border-radius:4px;padding:.15rem .5rem;cursor:pointer}
main{padding:1rem;max-width:1200px;margin:0 auto}h1{font-size:1.35rem;margin:.3rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.7rem}
.card{background:#fff;border-radius:8px;padding:.8rem;box-shadow:0 1px 2px #0002}.card .v{font-size:1.6rem;font-weight:700}.card .k{color:#5b6474;font-size:.85rem}
.table{overflow-x:auto;background:#fff;border-radius:8px;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%}th,td{padding:.45rem .6rem;border-bottom:1px solid #e5e8ee;text-align:left;vertical-align:top}th{background:#f0f2f6;font-weight:600;white-space:nowrap}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin-bottom:.8rem}form.filters label{display:flex;flex-direction:column;font-size:.8rem;color:#5b6474}
select,input,button,textarea{font:inherit;padding:.35rem .5rem;border:1px solid #c6ccd6;border-radius:4px;background:#fff}
button.primary{background:#b3261e;color:#fff;border-color:#b3261e;cursor:pointer}
.tag{display:inline-block;background:#fdecea;color:#8c1d18;border-radius:10px;padding:0 .45rem;font-size:.8rem;margin:0 .15rem .15rem 0}
.st{display:inline-block;border-radius:10px;padding:0 .5rem;font-size:.85rem;background:#e8eefc;color:#1f3f99}.overdue{color:#b3261e;font-weight:600}
.notice{background:#fff8e1;border-left:4px solid #f2b600;padding:.6rem .8rem;margin:.6rem 0}.error{background:#fdecea;border-left:4px solid #b3261e;padding:.6rem .8rem;margin:.6rem 0}
.timeline{list-style:none;padding:0;margin:0}.timeline li{background:#fff;border-left:3px solid #b3261e;margin:.4rem 0;padding:.5rem .7rem;border-radius:0 6px 6px 0}
.actions{display:flex;flex-wrap:wrap;gap:.8rem}.actions form{background:#fff;padding:.6rem;border-radius:8px;box-shadow:0 1px 2px #0002;display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}
.signin{max-width:360px;margin:3rem auto;background:#fff;padding:1.4rem;border-radius:10px;box-shadow:0 1px 3px #0003}.signin label{display:block;margin:.6rem 0}.signin input{width:100%}
svg{max-width:100%;height:auto;background:#fff;border-radius:8px}.muted{color:#5b6474}
@media (max-width:640px){main{padding:.6rem}header .me{margin-left:0}th,td{padding:.35rem .4rem;font-size:.9rem}}
";

/// The `Content-Security-Policy` of every dashboard page: nothing but the page's own images,
/// forms posting to the server, and the one inline style sheet, allowed by its SHA-256. No
/// script at all; no framing.
pub fn content_security_policy() -> &'static str {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        use base64::Engine;
        let digest: [u8; 32] =
            sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), STYLE.as_bytes()))
                .into();
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

/// Adds the browser security headers to every dashboard response: the page CSP (unless the
/// handler set a stricter one, as attachments do), no framing, no type sniffing, referrers
/// only to the server itself, and no caching (pages hold residents' data).
pub async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(policy) = HeaderValue::from_str(content_security_policy())
    {
        h.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A whole page: header with navigation (when signed in), the language switch, and `body`.
pub fn page(lang: Lang, title: &str, header: Option<&Header<'_>>, body: &str) -> Html<String> {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · {}</title><style>{STYLE}</style></head><body><header>\
         <a class=\"brand\" href=\"/dashboard/overview\">{}</a>",
        lang.code(),
        esc(title),
        lang.t("入户通 县级工作台", "Doorstep county dashboard"),
        lang.t("入户通 · 工作台", "Doorstep · Dashboard"),
    );
    if let Some(h) = header {
        let _ = write!(
            out,
            "<nav><a href=\"/dashboard/overview\">{}</a><a href=\"/dashboard/ledger\">{}</a>\
             <a href=\"/dashboard/grids\">{}</a><a href=\"/dashboard/conflicts\">{}</a>\
             <a href=\"/dashboard/freshness\">{}</a>",
            lang.t("总览", "Overview"),
            lang.t("问题台账", "Ledger"),
            lang.t("网格", "Grids"),
            lang.t("冲突复核", "Conflicts"),
            lang.t("同步情况", "Freshness"),
        );
        if h.role == Role::Admin {
            let _ = write!(
                out,
                "<a href=\"/dashboard/import\">{}</a><a href=\"/dashboard/admin\">{}</a>",
                lang.t("导入", "Import"),
                lang.t("系统管理", "Administration")
            );
        }
        let _ = write!(
            out,
            "</nav><span class=\"me\"><a href=\"/dashboard/account\" id=\"my-account\"><span id=\"me\">{} · {}</span></a>\
             <form method=\"post\" action=\"/dashboard/sign-out\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button id=\"sign-out\">{}</button></form>",
            esc(h.name),
            lang.role(h.role),
            esc(h.csrf),
            lang.t("退出", "Sign out"),
        );
    } else {
        out.push_str("<span class=\"me\">");
    }
    let _ = write!(
        out,
        "<a id=\"lang\" href=\"?lang={}\">{}</a></span></header><main>{body}</main></body></html>",
        if lang == Lang::Zh { "en" } else { "zh" },
        lang.t("English", "中文"),
    );
    Html(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn dates_are_china_time() {
        // 2026-11-23 16:30 UTC is 2026-11-24 00:30 in Beijing.
        assert_eq!(date_time(Timestamp(1_795_451_400_000)), "2026-11-24 00:30");
        assert_eq!(date(Timestamp(0)), "1970-01-01");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(url_value("a b&c=网"), "a%20b%26c%3D%E7%BD%91");
    }
}

//! How attachment bytes are served, to devices and on the dashboard alike (issue 16). A phone
//! declares an attachment's media type itself, so the declared type is never sent back: the
//! server reads the type from the bytes' first bytes (magic numbers) and serves only JPEG, PNG,
//! WebP and GIF as what they are, to be shown in the page; PDF as itself but for download;
//! anything else as `application/octet-stream` for download. Every answer carries
//! `X-Content-Type-Options: nosniff` and a `Content-Security-Policy` of `default-src 'none';
//! sandbox`, so even a file a browser opens runs no script, loads nothing and has no origin.
//!
//! On the dashboard the bytes are not served under `/dashboard` (where the session cookie
//! goes) but from [`FILES_PREFIX`], through a short-lived link signed with a key the nodes share
//! ([`signed_link`]): `/dashboard/attachments/…` checks the session and scope and redirects
//! there. A file opened in the browser so never even receives the session cookie.

use axum::http::{HeaderMap, HeaderValue, header};

/// The policy every attachment is served under.
pub const ATTACHMENT_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// Bytes of an attachment [`media_type_of`] needs to look at.
pub const SNIFF_BYTES: u64 = 16;

/// The media type the bytes show they are, if it is one served as itself: JPEG, PNG, WebP,
/// GIF or PDF. `None` for everything else (HTML, SVG, scripts, unknown formats).
pub fn media_type_of(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

/// Sets the headers an attachment is served with, from its first bytes: the sniffed type (or
/// `application/octet-stream`), `Content-Disposition: attachment` for everything but images,
/// `nosniff`, the sandbox policy, and no caching.
pub fn set_headers(headers: &mut HeaderMap, first_bytes: &[u8]) {
    let sniffed = media_type_of(first_bytes);
    let media_type = sniffed.unwrap_or("application/octet-stream");
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if !media_type.starts_with("image/") {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"attachment\""),
        );
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ATTACHMENT_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// Where the dashboard serves attachment bytes from: outside `/dashboard`, the session
/// cookie's path.
pub const FILES_PREFIX: &str = "/files";

/// How long a signed file link works, in milliseconds.
pub const LINK_LIFETIME_MS: i64 = 5 * 60_000;

/// The name of the link-signing key among the server's secrets.
pub const LINK_KEY_NAME: &str = "attachment_links";

/// HMAC-SHA-256 of `message` under `key` (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = sha2::Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    sha2::Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

fn signature(key: &[u8], doc: &str, hash: &str, thumbnail: bool, expires: i64) -> String {
    let message = format!("{doc}/{hash}/{}/{expires}", u8::from(thumbnail));
    hmac(key, message.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A link to an attachment's bytes (or thumbnail) through document `doc`, valid for
/// [`LINK_LIFETIME_MS`] from `now`, for a member whose scope was just checked.
pub fn signed_link(key: &[u8], doc: &str, hash: &str, thumbnail: bool, now: i64) -> String {
    let expires = now.saturating_add(LINK_LIFETIME_MS);
    let sig = signature(key, doc, hash, thumbnail, expires);
    let thumb = if thumbnail { "&thumbnail=1" } else { "" };
    format!("{FILES_PREFIX}/{doc}/{hash}?expires={expires}&sig={sig}{thumb}")
}

/// Whether a file link's signature is right and it has not expired at `now`.
pub fn link_is_valid(
    key: &[u8],
    doc: &str,
    hash: &str,
    thumbnail: bool,
    expires: i64,
    sig: &str,
    now: i64,
) -> bool {
    expires >= now && crate::auth::same_secret(&signature(key, doc, hash, thumbnail, expires), sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn file_links_are_bound_to_their_file_and_expire() {
        let key = b"a key the nodes share";
        let link = signed_link(key, "d", "h", false, 1_000);
        let sig = link.split("sig=").nth(1).expect("sig");
        let expires = 1_000 + LINK_LIFETIME_MS;
        assert!(link.starts_with("/files/d/h?expires="));
        assert!(link_is_valid(key, "d", "h", false, expires, sig, 1_000));
        assert!(!link_is_valid(key, "d", "h", false, expires, sig, expires + 1), "expired");
        assert!(!link_is_valid(key, "d", "other", false, expires, sig, 1_000), "another file");
        assert!(!link_is_valid(key, "d", "h", true, expires, sig, 1_000), "the thumbnail's is apart");
        assert!(!link_is_valid(b"another key", "d", "h", false, expires, sig, 1_000));
        assert!(!link_is_valid(key, "d", "h", false, expires + 1, sig, 1_000), "a longer life");
    }

    #[test]
    fn only_images_and_pdf_are_served_as_themselves() {
        assert_eq!(media_type_of(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(media_type_of(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(media_type_of(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(media_type_of(b"GIF89a"), Some("image/gif"));
        assert_eq!(media_type_of(b"%PDF-1.7"), Some("application/pdf"));
        for hostile in [&b"<html><script>"[..], b"<svg xmlns=", b"<?xml version", b"", b"RIFF"] {
            assert_eq!(media_type_of(hostile), None, "{hostile:?}");
        }
        let mut headers = HeaderMap::new();
        set_headers(&mut headers, b"<svg onload=alert(1)>");
        assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
        assert!(headers[header::CONTENT_DISPOSITION].to_str().expect("ascii").starts_with("attachment"));
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("sandbox"));
    }
}

//! How attachment bytes are served, to devices and on the dashboard alike (issue 16). A phone
//! declares an attachment's media type itself, so the declared type is never sent back: the
//! server reads the type from the bytes' first bytes (magic numbers) and serves only JPEG, PNG,
//! WebP and GIF as what they are, to be shown in the page; PDF as itself but for download;
//! anything else as `application/octet-stream` for download. Every answer carries
//! `X-Content-Type-Options: nosniff` and a `Content-Security-Policy` of `default-src 'none';
//! sandbox`, so even a file a browser opens runs no script, loads nothing and has no origin.

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
}

#[cfg(test)]
mod tests {
    use super::*;

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

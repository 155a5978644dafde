//! Thumbnails the server makes of complete photo attachments (JPEG, PNG), so a device on a
//! slow link can show a preview of a few KB and fetch the full photo on demand.

use std::io::Cursor;

use doorstep_core::model::attachment::AttachmentRef;

use crate::storage::{Storage, StorageError};

/// Longest edge of a thumbnail, in pixels.
pub const THUMBNAIL_EDGE: u32 = 160;
/// JPEG quality of thumbnails.
const QUALITY: u8 = 70;
/// Largest picture decoded for a thumbnail, in pixels per edge (a decompression bomb stops here).
const MAX_EDGE: u32 = 12_000;

/// A JPEG thumbnail of `bytes`, or `None` if they are not a JPEG or PNG picture this server
/// can read.
pub fn make(media_type: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let format = match media_type {
        "image/jpeg" | "image/jpg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        _ => return None,
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_EDGE);
    limits.max_image_height = Some(MAX_EDGE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let picture = reader.decode().ok()?;
    let small = picture.thumbnail(THUMBNAIL_EDGE, THUMBNAIL_EDGE).to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY).encode_image(&small).ok()?;
    Some(out)
}

/// Makes and stores the thumbnail of a just-completed attachment (blocking; the request that
/// completed the upload waits for it, so a thumbnail exists as soon as the photo does). A
/// picture that cannot be read gets none: the full file stays available.
pub fn store_for(storage: &dyn Storage, reference: &AttachmentRef) -> Result<(), StorageError> {
    if !reference.media_type.starts_with("image/") {
        return Ok(());
    }
    let Some(bytes) = storage.attachment_range(&reference.hash, 0, reference.size)? else { return Ok(()) };
    match make(&reference.media_type, &bytes) {
        Some(thumbnail) => storage.put_attachment_thumbnail(&reference.hash, "image/jpeg", &thumbnail),
        None => {
            tracing::debug!(hash = %reference.hash, "no thumbnail: not a readable JPEG or PNG");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_shrinks_and_garbage_gets_none() {
        let picture =
            image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&picture)
            .expect("encode");
        let thumb = make("image/jpeg", &jpeg).expect("thumbnail");
        let decoded = image::load_from_memory(&thumb).expect("decode");
        assert_eq!((decoded.width(), decoded.height()), (160, 120));
        assert!(make("image/jpeg", b"not a picture").is_none());
        assert!(make("application/pdf", &jpeg).is_none());
    }
}

//! Avatar images: what an upload may be, and the renditions made of it (with the `image` crate).
//!
//! command-api checks an upload from its first bytes alone ([`inspect`]: the format from the
//! bytes, never the name; the declared size against the pixel limits, so a decompression bomb
//! is refused before anything decodes it). The worker decodes it under the same limits (which
//! also cap the decoder's allocations), turns it upright by its EXIF orientation, crops it to a
//! square and writes each of [`SIZES`] as a fresh JPEG: no EXIF (location included), ICC, XMP
//! or text chunk of the upload survives, because nothing but pixels goes into the encoder.

use std::io::Cursor;

use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Rgb, RgbImage, Rgba, codecs::jpeg::JpegEncoder,
    imageops::FilterType,
};

/// The renditions written for every avatar, in pixels per side.
pub const SIZES: [u32; 2] = [512, 128];

/// JPEG quality of the renditions.
const QUALITY: u8 = 85;

/// The longest side an upload may declare, whatever its pixel count.
pub const MAX_SIDE: u32 = 12_000;

/// The formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    WebP,
}

impl Format {
    /// The name in events and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::WebP => ImageFormat::WebP,
        }
    }
}

/// Why an image is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bytes are none of JPEG, PNG or WebP.
    #[error("the file is not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    /// The image declares more pixels or a longer side than allowed.
    #[error("the image is {width}×{height} pixels; at most {max_pixels} pixels and {MAX_SIDE} per side are accepted")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit.
        max_pixels: u64,
    },
    /// The image's data is broken or ends early.
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

impl Refusal {
    /// A short machine-readable code (problem `code`, metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat => "unsupported_image",
            Self::TooManyPixels { .. } => "image_too_large",
            Self::Undecodable(_) => "undecodable_image",
        }
    }
}

/// What an upload's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected {
    /// Its format, from its bytes.
    pub format: Format,
    /// Declared width.
    pub width: u32,
    /// Declared height.
    pub height: u32,
}

/// The format from the first bytes (magic numbers), when it is one accepted.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    match image::guess_format(bytes).ok()? {
        ImageFormat::Jpeg => Some(Format::Jpeg),
        ImageFormat::Png => Some(Format::Png),
        ImageFormat::WebP => Some(Format::WebP),
        _ => None,
    }
}

/// Checks an upload from its header: an accepted format, and dimensions within `max_pixels`
/// and [`MAX_SIDE`]. Reads no pixel data.
pub fn inspect(bytes: &[u8], max_pixels: u64) -> Result<Inspected, Refusal> {
    let format = sniff(bytes).ok_or(Refusal::UnsupportedFormat)?;
    let reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let (width, height) = reader.into_dimensions().map_err(|e| Refusal::Undecodable(e.to_string()))?;
    check_dimensions(width, height, max_pixels)?;
    Ok(Inspected { format, width, height })
}

fn check_dimensions(width: u32, height: u32, max_pixels: u64) -> Result<(), Refusal> {
    if width == 0 || height == 0 {
        return Err(Refusal::Undecodable("the image has no pixels".into()));
    }
    if u64::from(width) * u64::from(height) > max_pixels || width > MAX_SIDE || height > MAX_SIDE {
        return Err(Refusal::TooManyPixels { width, height, max_pixels });
    }
    Ok(())
}

/// Decodes an upload under the limits and returns each of [`SIZES`] as `(size, JPEG bytes)`:
/// upright, centre-cropped to a square, transparency laid on white, no metadata.
pub fn renditions(bytes: &[u8], max_pixels: u64) -> Result<Vec<(u32, Vec<u8>)>, Refusal> {
    let format = sniff(bytes).ok_or(Refusal::UnsupportedFormat)?;
    // The header is read once, here: the same checks as `inspect`, on the decoder's dimensions.
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format.image_format())
        .into_decoder()
        .map_err(|e| Refusal::Undecodable(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, max_pixels)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // Four bytes a pixel (RGBA8) and room for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(16 << 20));
    decoder.set_limits(limits).map_err(|e| Refusal::Undecodable(e.to_string()))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| Refusal::Undecodable(e.to_string()))?;
    // Memory: the decoded image is the one large buffer. The largest rendition is resized
    // straight from a view of its centred square (no copy), the decoded image dropped, and the
    // rest done at rendition size: turning upright commutes with taking the centred square.
    let side = width.min(height);
    let square = image::imageops::crop_imm(&image, (width - side) / 2, (height - side) / 2, side, side);
    // Area averaging (integer, row by row): no full-size intermediate buffer.
    let mut largest = DynamicImage::ImageRgba8(image::imageops::thumbnail(&*square, SIZES[0], SIZES[0]));
    drop(image);
    largest.apply_orientation(orientation);
    let largest = flatten(largest);
    SIZES
        .iter()
        .map(|&size| {
            let rendition = if size == SIZES[0] {
                largest.clone()
            } else {
                image::imageops::resize(&largest, size, size, FilterType::Lanczos3)
            };
            let mut out = Vec::new();
            JpegEncoder::new_with_quality(&mut out, QUALITY)
                .encode_image(&rendition)
                .map_err(|e| Refusal::Undecodable(e.to_string()))?;
            Ok((size, out))
        })
        .collect()
}

/// RGB, with any transparency composited over white (JPEG has no alpha).
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let Rgba([r, g, b, a]) = *rgba.get_pixel(x, y);
        let over = |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        Rgb([over(r), over(g), over(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn formats_come_from_the_bytes() {
        assert_eq!(sniff(&png(4, 4)), Some(Format::Png));
        assert_eq!(sniff(b"GIF89a...."), None, "GIF is an image, but not one accepted");
        assert_eq!(sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), None);
        assert_eq!(inspect(b"hello", 1_000_000), Err(Refusal::UnsupportedFormat));
    }

    #[test]
    fn renditions_are_square_jpegs_of_each_size() {
        let out = renditions(&png(300, 200), 25_000_000).unwrap();
        assert_eq!(out.iter().map(|(s, _)| *s).collect::<Vec<_>>(), SIZES);
        for (size, bytes) in out {
            assert_eq!(sniff(&bytes), Some(Format::Jpeg));
            let decoded = image::load_from_memory(&bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (size, size));
        }
    }

    #[test]
    fn a_truncated_image_is_undecodable_not_a_panic() {
        let whole = png(64, 64);
        let cut = &whole[..whole.len() / 2];
        assert!(matches!(renditions(cut, 25_000_000), Err(Refusal::Undecodable(_))));
    }
}

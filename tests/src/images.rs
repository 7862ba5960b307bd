//! Images for the avatar tests, made here so each test says what is in them: a photo with EXIF
//! metadata (a location and a rotation), a PNG with a text chunk, a WebP, and the header of a
//! decompression bomb.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

/// A gradient of `width`×`height`.
fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 140]))
}

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A JPEG photo carrying an EXIF block: `description` (put a location in it) and orientation 6
/// (rotate 90° clockwise to display).
pub fn jpeg_with_exif(width: u32, height: u32, description: &str) -> Vec<u8> {
    let jpeg = encode(&picture(width, height), ImageFormat::Jpeg);
    // TIFF, little-endian: one IFD with ImageDescription (ASCII) and Orientation (SHORT).
    let text: Vec<u8> = description.bytes().chain([0]).collect();
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    let data_at = 8 + 2 + 2 * 12 + 4;
    for (tag, kind, count, value) in [(0x010E_u16, 2_u16, text.len() as u32, data_at as u32), (0x0112, 3, 1, 6)] {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&count.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    }
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(&text);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    // After SOI and the encoder's JFIF APP0 segment.
    assert_eq!(&jpeg[..4], [0xFF, 0xD8, 0xFF, 0xE0]);
    let app0_end = 4 + u16::from_be_bytes([jpeg[4], jpeg[5]]) as usize;
    [&jpeg[..app0_end], &app1, &jpeg[app0_end..]].concat()
}

/// A PNG chunk: length, kind, data, CRC.
fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out
}

/// A PNG with a `tEXt` chunk saying `text` (under the keyword `Comment`).
pub fn png_with_text(width: u32, height: u32, text: &str) -> Vec<u8> {
    let png = encode(&picture(width, height), ImageFormat::Png);
    let iend = png.len() - 12;
    let text_chunk = chunk(b"tEXt", &[b"Comment\0".as_slice(), text.as_bytes()].concat());
    [&png[..iend], &text_chunk, &png[iend..]].concat()
}

/// A (lossless) WebP.
pub fn webp(width: u32, height: u32) -> Vec<u8> {
    encode(&picture(width, height), ImageFormat::WebP)
}

/// A PNG that declares `width`×`height` 8-bit grey pixels and carries a few bytes of data: the
/// shape of a decompression bomb, as far as anything reading it before decoding can tell.
pub fn bomb_png(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let idat = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    [b"\x89PNG\r\n\x1a\n".as_slice(), &chunk(b"IHDR", &ihdr), &chunk(b"IDAT", &idat), &chunk(b"IEND", &[])].concat()
}

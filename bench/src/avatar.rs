//! Avatar renditions: the time and peak memory of turning photos of growing size into the
//! renditions (`platform::avatars::renditions`, what the avatar worker runs), next to a plain
//! decode of the same bytes: the floor no rendition can beat, so the figures read as ratios.

use std::{io::Cursor, time::Instant};

use image::{ImageFormat, Rgb, RgbImage};

/// A photo-like JPEG of about `megapixels` (4:3, gradients with texture, quality 90).
fn photo(megapixels: f64) -> Vec<u8> {
    let width = (megapixels * 1e6 * 4.0 / 3.0).sqrt() as u32;
    let height = width * 3 / 4;
    let image = RgbImage::from_fn(width, height, |x, y| {
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 32;
        Rgb([((x * 255 / width) + noise) as u8, ((y * 255 / height) + noise) as u8, (noise * 4) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&image).expect("encoding a JPEG");
    out.into_inner()
}

/// The process's peak resident memory so far (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Prints one line per size, smallest first; each line's peak is that size's rendition (the
/// peak is reset before it and read before the plain decode runs).
pub fn run(megapixels: &[f64]) -> anyhow::Result<()> {
    println!(
        "avatar renditions ({:?} px, JPEG q85) from JPEG photos; peak RSS of this process",
        platform::avatars::SIZES
    );
    println!(
        "{:>6} {:>9} {:>12} {:>12} {:>7} {:>14}",
        "MP", "upload", "renditions", "plain decode", "ratio", "peak RSS"
    );
    let mut sizes = megapixels.to_vec();
    sizes.sort_by(f64::total_cmp);
    for mp in sizes {
        let jpeg = photo(mp);
        // Linux resets the peak to the current RSS on `5` (since 4.0): the peak below is this
        // rendition's, not the making of the photo's.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let started = Instant::now();
        let out =
            platform::avatars::renditions(&jpeg, u64::MAX / 8).map_err(|e| anyhow::anyhow!("{mp} MP refused: {e}"))?;
        let render = started.elapsed();
        let peak = peak_rss_mib();
        let started = Instant::now();
        let decoded = image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg)?;
        let decode = started.elapsed();
        drop(decoded);
        assert_eq!(out.len(), platform::avatars::SIZES.len());
        println!(
            "{mp:>6.1} {:>7.2}MB {:>10.0}ms {:>10.0}ms {:>6.2}x {:>10.0} MiB",
            jpeg.len() as f64 / 1e6,
            render.as_secs_f64() * 1e3,
            decode.as_secs_f64() * 1e3,
            render.as_secs_f64() / decode.as_secs_f64(),
            peak
        );
    }
    Ok(())
}

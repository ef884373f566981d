//! A minimal PNG encoder: 8-bit RGB, no interlace, one zlib stream.
//!
//! Enough for `loadgen plot` without pulling in an image stack: the signature, an `IHDR`,
//! one `IDAT` holding the rows (each with filter type 0) deflated by `flate2`, and `IEND`,
//! each chunk closed by its CRC-32.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Encodes `rgb` (`width * height * 3` bytes, rows top to bottom) as a PNG file.
///
/// # Errors
/// A message when the buffer's size does not match the dimensions.
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    let row = width as usize * 3;
    if rgb.len() != row * height as usize || width == 0 || height == 0 {
        return Err(format!(
            "image buffer of {} bytes does not match {width}x{height}",
            rgb.len()
        ));
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    for r in rgb.chunks(row) {
        z.write_all(&[0])
            .and_then(|_| z.write_all(r))
            .map_err(|e| format!("cannot compress the image: {e}"))?;
    }
    let idat = z
        .finish()
        .map_err(|e| format!("cannot compress the image: {e}"))?;
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

//! Content-Encoding decoding for HTTP bodies, as forgiving as libhtp: each layer sniffs the
//! real format (gzip, zlib or raw deflate) whatever the header claimed, gzip header flags are
//! parsed leniently (reserved bits ignored), trailers and checksums are not enforced, and a
//! layer that cannot decode anything passes its input through unchanged. Output is capped.

use flate2::{Decompress, FlushDecompress, Status};

/// Decode one deflate stream (raw or zlib-wrapped) as far as it goes; returns the output and
/// whether anything at all decoded.
fn inflate(data: &[u8], zlib: bool, cap: usize) -> (Vec<u8>, bool) {
    let mut d = Decompress::new(zlib);
    let mut out = Vec::with_capacity((data.len() * 4).min(cap).max(64));
    let mut ok_any = false;
    loop {
        if out.len() >= cap {
            break;
        }
        if out.capacity() - out.len() < 4096 {
            out.reserve(((out.capacity()).max(4096)).min(cap - out.len() + 1));
        }
        let in_before = d.total_in() as usize;
        let out_before = out.len();
        let Some(input) = data.get(in_before..) else { break };
        match d.decompress_vec(input, &mut out, FlushDecompress::Sync) {
            Ok(Status::StreamEnd) => {
                ok_any = true;
                break;
            }
            Ok(_) => {
                if out.len() > out_before {
                    ok_any = true;
                }
                if d.total_in() as usize == in_before && out.len() == out_before {
                    break; // no progress: input exhausted or stuck
                }
            }
            Err(_) => break,
        }
    }
    out.truncate(cap);
    let ok = ok_any || !out.is_empty();
    (out, ok)
}

/// Length of a gzip member header, tolerating reserved flag bits.
fn gzip_header_len(b: &[u8]) -> Option<usize> {
    if b.len() < 10 || b[0] != 0x1f || b[1] != 0x8b {
        return None;
    }
    let flg = b[3];
    let mut o = 10;
    if flg & 0x04 != 0 {
        let xlen = u16::from_le_bytes([*b.get(o)?, *b.get(o + 1)?]) as usize;
        o += 2 + xlen;
    }
    if flg & 0x08 != 0 {
        o += b.get(o..)?.iter().position(|&c| c == 0)? + 1;
    }
    if flg & 0x10 != 0 {
        o += b.get(o..)?.iter().position(|&c| c == 0)? + 1;
    }
    if flg & 0x02 != 0 {
        o += 2;
    }
    if o > b.len() {
        return None;
    }
    Some(o)
}

fn looks_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (b[0] as u16 * 256 + b[1] as u16) % 31 == 0
}

/// Decode one layer, sniffing the format. Falls back through the other formats, then to
/// passthrough, like libhtp's decompressor restarts.
pub fn decode_layer(data: &[u8], cap: usize) -> Vec<u8> {
    if data.is_empty() {
        return Vec::new();
    }
    if let Some(h) = gzip_header_len(data) {
        let (out, ok) = inflate(&data[h..], false, cap);
        if ok {
            return out;
        }
    }
    if looks_zlib(data) {
        let (out, ok) = inflate(data, true, cap);
        if ok {
            return out;
        }
    }
    let (out, ok) = inflate(data, false, cap);
    if ok {
        return out;
    }
    data[..data.len().min(cap)].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{GzEncoder, ZlibEncoder, DeflateEncoder};
    use flate2::Compression;
    use std::io::Write;

    #[test]
    fn sniffs_every_format() {
        let msg = b"hello hello hello world".to_vec();
        let mut g = GzEncoder::new(Vec::new(), Compression::default());
        g.write_all(&msg).unwrap();
        let gz = g.finish().unwrap();
        assert_eq!(decode_layer(&gz, 1 << 20), msg);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&msg).unwrap();
        assert_eq!(decode_layer(&z.finish().unwrap(), 1 << 20), msg);
        let mut d = DeflateEncoder::new(Vec::new(), Compression::default());
        d.write_all(&msg).unwrap();
        assert_eq!(decode_layer(&d.finish().unwrap(), 1 << 20), msg);
        // Reserved gzip flag bits are ignored.
        let mut odd = gz.clone();
        odd[3] |= 0x20;
        assert_eq!(decode_layer(&odd, 1 << 20), msg);
        // Not compressed at all: passthrough.
        assert_eq!(decode_layer(b"plain text", 1 << 20), b"plain text");
    }
}

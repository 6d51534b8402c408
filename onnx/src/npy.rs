//! NumPy `.npy` files (format versions 1 to 3) to and from core tensors,
//! for `sunrise run`'s inputs and outputs. Little-endian `f4`, `f8`, `i8`,
//! `i4`, `i2`, `i1`, `u1`, `u2`, `u4` and `b1` are read (narrow integers
//! widen to i64, bool to a u8 mask); C and Fortran order. Tensors are
//! written in version 1.0, C order.

use std::path::Path;

use sunrise::{DType, Device, Tensor};

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

fn bad(what: &str, detail: impl Into<String>) -> Error {
    Error::Npy {
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// Reads the `.npy` file at `path`.
pub fn read(path: &Path, device: &Device) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes, &path.display().to_string(), device)
}

/// Parses `.npy` bytes (`what` names them in errors).
pub fn decode(bytes: &[u8], what: &str, device: &Device) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(what, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(what, format!("unknown .npy format version {v}"))),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .ok_or_else(|| bad(what, "header runs past the end of the file"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad(what, "header is not text"))?;
    let descr = field(header, "descr").ok_or_else(|| bad(what, "header has no 'descr'"))?;
    let fortran = field(header, "fortran_order").is_some_and(|v| v.starts_with("True"));
    let shape_txt = field(header, "shape").ok_or_else(|| bad(what, "header has no 'shape'"))?;
    let shape =
        parse_shape(shape_txt).ok_or_else(|| bad(what, format!("bad shape {shape_txt}")))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let (kind, size) = parse_descr(descr).ok_or_else(|| {
        Error::unsupported(
            what,
            format!("dtype {descr:?} (little-endian f4, f8, ints, u1, b1)"),
        )
    })?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(what, "element count overflows"))?;
    let data = &bytes[start + len..];
    if data.len() != n.saturating_mul(size) {
        return Err(bad(
            what,
            format!(
                "{} data bytes for shape {shape:?} of {size}-byte values",
                data.len()
            ),
        ));
    }
    // In Fortran order the data is the transpose's C order.
    let stored: Vec<usize> = if fortran {
        shape.iter().rev().copied().collect()
    } else {
        shape.clone()
    };
    let chunks = data.chunks_exact(size.max(1));
    let t = match (kind, size) {
        ('f', 4) => {
            let v: Vec<f32> = chunks
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Tensor::from_slice(&v, &stored, device)?
        }
        ('f', 8) => {
            let v: Vec<f64> = chunks
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Tensor::from_slice(&v, &stored, device)?
        }
        ('u', 1) | ('b', 1) => Tensor::from_slice(data, &stored, device)?,
        _ => {
            let v: Vec<i64> = chunks.map(|c| int(c, kind == 'i')).collect();
            Tensor::from_slice(&v, &stored, device)?
        }
    };
    if fortran && shape.len() > 1 {
        let perm: Vec<usize> = (0..shape.len()).rev().collect();
        return Ok(t.permute(&perm)?.contiguous()?);
    }
    Ok(t)
}

/// A little-endian integer of 1 to 8 bytes.
fn int(c: &[u8], signed: bool) -> i64 {
    let mut b = [0u8; 8];
    b[..c.len()].copy_from_slice(c);
    let v = u64::from_le_bytes(b);
    let bits = 8 * c.len() as u32;
    if signed && bits < 64 && v >> (bits - 1) & 1 == 1 {
        (v | (!0u64 << bits)) as i64
    } else {
        v as i64
    }
}

fn parse_descr(d: &str) -> Option<(char, usize)> {
    let (order, rest) = d.split_at(1.min(d.len()));
    if !matches!(order, "<" | "|" | "=") {
        return None;
    }
    let kind = rest.chars().next()?;
    let size: usize = rest[1..].parse().ok()?;
    match (kind, size) {
        ('f', 4 | 8) | ('i', 1 | 2 | 4 | 8) | ('u', 1 | 2 | 4) | ('b', 1) => Some((kind, size)),
        _ => None,
    }
}

/// The text after `'key':` up to the next top-level comma or brace.
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let i = header.find(&format!("'{key}'"))?;
    let rest = header[i + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    if rest.starts_with('(') {
        return rest.find(')').map(|j| &rest[..=j]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn parse_shape(s: &str) -> Option<Vec<usize>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse().ok())
        .collect()
}

/// `t` as `.npy` bytes (version 1.0, C order).
pub fn encode(t: &Tensor) -> Result<Vec<u8>> {
    let (descr, data): (&str, Vec<u8>) = match t.dtype() {
        DType::F32 => (
            "<f4",
            t.to_vec::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            "<f8",
            t.to_vec::<f64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            "<i8",
            t.to_vec::<i64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::U8 => ("|u1", t.to_vec::<u8>()?),
    };
    let dims: Vec<String> = t.shape().iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts at a multiple of 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend([1, 0]);
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    Ok(out)
}

/// Writes `t` to `path` as `.npy`.
pub fn write(t: &Tensor, path: &Path) -> Result<()> {
    std::fs::write(path, encode(t)?).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_numpy_headers() {
        let cpu = Device::cpu();
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &cpu).unwrap();
        let y = decode(&encode(&x).unwrap(), "x", &cpu).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(y.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
        // A header as NumPy writes it, Fortran order, i4 data.
        let mut f = MAGIC.to_vec();
        let h = "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 2), }          \n";
        f.extend([1, 0]);
        f.extend((h.len() as u16).to_le_bytes());
        f.extend(h.as_bytes());
        for v in [1i32, -3, 2, 4] {
            f.extend(v.to_le_bytes());
        }
        let t = decode(&f, "f", &cpu).unwrap();
        assert_eq!(t.dtype(), DType::I64);
        assert_eq!(t.to_vec::<i64>().unwrap(), vec![1, 2, -3, 4]);
    }

    #[test]
    fn truncated_or_foreign_files_are_errors() {
        let cpu = Device::cpu();
        let x = Tensor::from_slice(&[1.0f64; 4], &[4], &cpu).unwrap();
        let good = encode(&x).unwrap();
        for cut in [0, 5, 9, 20, good.len() - 1] {
            assert!(decode(&good[..cut], "x", &cpu).is_err(), "cut at {cut}");
        }
        let swap = |from: &[u8], to: &[u8]| {
            let i = good.windows(from.len()).position(|w| w == from).unwrap();
            let mut b = good.clone();
            b.splice(i..i + from.len(), to.iter().copied());
            b
        };
        // A shape the data does not fill (same header length).
        let big = swap(b"(4,)", b"(9,)");
        let e = decode(&big, "x", &cpu).unwrap_err().to_string();
        assert!(e.contains("data bytes"), "{e}");
        let be = swap(b"<f8", b">f8");
        let e = decode(&be, "x", &cpu).unwrap_err().to_string();
        assert!(e.contains("unsupported"), "{e}");
    }
}

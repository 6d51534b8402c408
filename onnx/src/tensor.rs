//! `TensorProto` to and from core tensors: dtypes, the four places data
//! can live (raw bytes, typed fields, external files), and the size checks
//! that keep a hostile file from making us allocate more than it holds.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use sunrise::{DType, Device, Element, Tensor};

use crate::error::{Error, Result};
use crate::proto::tensor_proto::{DataLocation, DataType};
use crate::proto::TensorProto;

/// The largest rank the core's tensors have.
const MAX_RANK: usize = 8;

/// The core dtype that holds ONNX's `dt`, or why there is none. Narrower
/// integers widen to i64 (values are exact); bool is a 0/1 u8 mask.
pub(crate) fn dtype_of(dt: i32, at: &str) -> Result<DType> {
    match DataType::try_from(dt) {
        Ok(DataType::Float) => Ok(DType::F32),
        Ok(DataType::Double) => Ok(DType::F64),
        Ok(DataType::Uint8 | DataType::Bool) => Ok(DType::U8),
        Ok(
            DataType::Int64
            | DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint16
            | DataType::Uint32,
        ) => Ok(DType::I64),
        Ok(other) => Err(Error::unsupported(
            at,
            format!(
                "dtype {} (the core has f32, f64, i64 and u8)",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(Error::invalid(
            at,
            format!("data_type {dt} is not an ONNX dtype"),
        )),
    }
}

/// Bytes per element of ONNX's `dt` in `raw_data`.
fn raw_size(dt: DataType) -> usize {
    match dt {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Int16 | DataType::Uint16 | DataType::Float16 | DataType::Bfloat16 => 2,
        _ => 1,
    }
}

/// The shape of `dims`, checked: no negative extent, rank at most 8, and
/// an element count that fits.
pub(crate) fn shape_of(dims: &[i64], at: &str) -> Result<(Vec<usize>, usize)> {
    if dims.len() > MAX_RANK {
        return Err(Error::unsupported(
            at,
            format!("rank {} (at most {MAX_RANK})", dims.len()),
        ));
    }
    let mut shape = Vec::with_capacity(dims.len());
    let mut n: usize = 1;
    for &d in dims {
        let d = usize::try_from(d)
            .map_err(|_| Error::invalid(format!("{at}.dims"), format!("negative extent {d}")))?;
        n = n
            .checked_mul(d)
            .ok_or_else(|| Error::invalid(format!("{at}.dims"), "element count overflows"))?;
        shape.push(d);
    }
    Ok((shape, n))
}

/// `t` as a core tensor on `device`; external data is read from below
/// `dir` (the model's directory) only.
pub fn from_proto(t: &TensorProto, dir: Option<&Path>, device: &Device) -> Result<Tensor> {
    let at = format!("tensor {:?}", t.name());
    let dtype = dtype_of(t.data_type(), &at)?;
    let dt = DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined);
    let (shape, n) = shape_of(&t.dims, &at)?;
    if t.segment.is_some() {
        return Err(Error::unsupported(&at, "segmented tensors"));
    }
    let external;
    let raw: Option<&[u8]> = if t.data_location() == DataLocation::External {
        external = read_external(t, dir, n.saturating_mul(raw_size(dt)), &at)?;
        Some(&external)
    } else {
        t.raw_data.as_deref()
    };
    let len_err = |got: usize| {
        Error::invalid(
            &at,
            format!("{got} values stored for shape {shape:?} ({n} elements)"),
        )
    };
    if let Some(raw) = raw {
        let size = raw_size(dt);
        if raw.len() != n.saturating_mul(size) {
            return Err(len_err(raw.len() / size.max(1)));
        }
        return match dtype {
            DType::F32 => make(&decode(raw, f32::from_le_bytes), &shape, device),
            DType::F64 => make(&decode(raw, f64::from_le_bytes), &shape, device),
            DType::U8 => make(raw, &shape, device),
            _ => {
                let v: Vec<i64> = match dt {
                    DataType::Int64 => decode(raw, i64::from_le_bytes),
                    DataType::Int32 => decode(raw, |b: [u8; 4]| i32::from_le_bytes(b) as i64),
                    DataType::Uint32 => decode(raw, |b: [u8; 4]| u32::from_le_bytes(b) as i64),
                    DataType::Int16 => decode(raw, |b: [u8; 2]| i16::from_le_bytes(b) as i64),
                    DataType::Uint16 => decode(raw, |b: [u8; 2]| u16::from_le_bytes(b) as i64),
                    _ => raw.iter().map(|&b| b as i8 as i64).collect(),
                };
                make(&v, &shape, device)
            }
        };
    }
    let check = |got: usize| if got == n { Ok(()) } else { Err(len_err(got)) };
    match dtype {
        DType::F32 => {
            check(t.float_data.len())?;
            make(&t.float_data, &shape, device)
        }
        DType::F64 => {
            check(t.double_data.len())?;
            make(&t.double_data, &shape, device)
        }
        DType::U8 => {
            check(t.int32_data.len())?;
            let v: Vec<u8> = t.int32_data.iter().map(|&x| x as u8).collect();
            make(&v, &shape, device)
        }
        _ => {
            let v: Vec<i64> = match dt {
                DataType::Int64 => t.int64_data.clone(),
                DataType::Uint32 => t.uint64_data.iter().map(|&x| x as i64).collect(),
                _ => t.int32_data.iter().map(|&x| x as i64).collect(),
            };
            check(v.len())?;
            make(&v, &shape, device)
        }
    }
}

fn make<T: Element>(v: &[T], shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(v, shape, device)?)
}

/// Little-endian elements of `N` bytes each.
fn decode<T, const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks of N bytes")))
        .collect()
}

/// The bytes of an external tensor: `location` relative to `dir` (no
/// absolute path, no `..`, and after resolving links still below `dir`),
/// `offset` and `length` inside the file, `length` equal to `want`.
fn read_external(t: &TensorProto, dir: Option<&Path>, want: usize, at: &str) -> Result<Vec<u8>> {
    let dir = dir.ok_or_else(|| {
        Error::invalid(
            at,
            "external data, but the model was not loaded from a file",
        )
    })?;
    let field = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key() == k)
            .map(|e| e.value())
    };
    let loc = field("location")
        .ok_or_else(|| Error::invalid(format!("{at}.external_data"), "no \"location\" entry"))?;
    let rel = Path::new(loc);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Error::invalid(
            format!("{at}.external_data.location"),
            format!("{loc:?} must be a relative path below the model's directory"),
        ));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let base = dir.canonicalize().map_err(io(dir))?;
    let path = base.join(rel);
    let real = path.canonicalize().map_err(io(&path))?;
    if !real.starts_with(&base) {
        return Err(Error::invalid(
            format!("{at}.external_data.location"),
            format!("{loc:?} resolves outside the model's directory"),
        ));
    }
    let num = |k: &str| -> Result<Option<u64>> {
        field(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    Error::invalid(
                        format!("{at}.external_data.{k}"),
                        format!("{v:?} is not a number"),
                    )
                })
            })
            .transpose()
    };
    let offset = num("offset")?.unwrap_or(0);
    let mut file = std::fs::File::open(&real).map_err(io(&real))?;
    let size = file.metadata().map_err(io(&real))?.len();
    let length = num("length")?.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(Error::invalid(
            format!("{at}.external_data"),
            format!(
                "offset {offset} + length {length} lies past the end of {loc:?} ({size} bytes)"
            ),
        ));
    }
    if length != want as u64 {
        return Err(Error::invalid(
            format!("{at}.external_data.length"),
            format!("{length} bytes, but the shape needs {want}"),
        ));
    }
    let mut buf = vec![0u8; want];
    file.seek(SeekFrom::Start(offset)).map_err(io(&real))?;
    file.read_exact(&mut buf).map_err(io(&real))?;
    Ok(buf)
}

/// `t` as a `TensorProto` named `name` (raw little-endian data; u8 as
/// UINT8).
pub fn to_proto(t: &Tensor, name: &str) -> Result<TensorProto> {
    let (dt, raw) = match t.dtype() {
        DType::F32 => (
            DataType::Float,
            bytes(&t.to_vec::<f32>()?, f32::to_le_bytes),
        ),
        DType::F64 => (
            DataType::Double,
            bytes(&t.to_vec::<f64>()?, f64::to_le_bytes),
        ),
        DType::I64 => (
            DataType::Int64,
            bytes(&t.to_vec::<i64>()?, i64::to_le_bytes),
        ),
        DType::U8 => (DataType::Uint8, t.to_vec::<u8>()?),
    };
    Ok(TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(dt as i32),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    })
}

fn bytes<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Device {
        Device::cpu()
    }

    #[test]
    fn raw_and_typed_data_round_trip() {
        let x = Tensor::from_slice(&[1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0], &[2, 3], &cpu()).unwrap();
        let p = to_proto(&x, "x").unwrap();
        let y = from_proto(&p, None, &cpu()).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(y.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
        let typed = TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Int32 as i32),
            int32_data: vec![-1, 5, 7],
            ..Default::default()
        };
        let t = from_proto(&typed, None, &cpu()).unwrap();
        assert_eq!(t.dtype(), DType::I64);
        assert_eq!(t.to_vec::<i64>().unwrap(), vec![-1, 5, 7]);
    }

    #[test]
    fn data_that_does_not_fill_the_shape_is_refused() {
        // A huge shape with 8 bytes of data: refused before any allocation.
        let p = TensorProto {
            dims: vec![1 << 40, 1 << 20],
            data_type: Some(DataType::Float as i32),
            raw_data: Some(vec![0; 8]),
            name: Some("w".into()),
            ..Default::default()
        };
        let e = from_proto(&p, None, &cpu()).unwrap_err().to_string();
        assert!(
            e.contains("tensor \"w\"") && e.contains("values stored"),
            "{e}"
        );
        let overflow = TensorProto {
            dims: vec![i64::MAX, 4],
            data_type: Some(DataType::Float as i32),
            ..Default::default()
        };
        assert!(from_proto(&overflow, None, &cpu())
            .unwrap_err()
            .to_string()
            .contains("overflows"));
        let neg = TensorProto {
            dims: vec![-3],
            data_type: Some(DataType::Float as i32),
            ..Default::default()
        };
        assert!(from_proto(&neg, None, &cpu())
            .unwrap_err()
            .to_string()
            .contains("negative"));
    }

    #[test]
    fn external_data_stays_below_the_model_directory() {
        let dir = std::env::temp_dir().join(format!("sunrise-onnx-ext-{}", std::process::id()));
        let sub = dir.join("model");
        std::fs::create_dir_all(&sub).unwrap();
        let vals: Vec<u8> = [1.0f32, 2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut data = vec![9u8; 4];
        data.extend(&vals);
        std::fs::write(sub.join("w.bin"), &data).unwrap();
        std::fs::write(dir.join("secret.bin"), &vals).unwrap();
        let ext = |loc: &str, off: &str| TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Float as i32),
            data_location: Some(DataLocation::External as i32),
            external_data: [("location", loc), ("offset", off)]
                .iter()
                .map(|(k, v)| crate::proto::StringStringEntryProto {
                    key: Some(k.to_string()),
                    value: Some(v.to_string()),
                })
                .collect(),
            ..Default::default()
        };
        let t = from_proto(&ext("w.bin", "4"), Some(&sub), &cpu()).unwrap();
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        for (loc, off) in [("../secret.bin", "0"), ("/etc/passwd", "0"), ("w.bin", "8")] {
            let e = from_proto(&ext(loc, off), Some(&sub), &cpu())
                .unwrap_err()
                .to_string();
            assert!(e.contains("external_data"), "{loc}: {e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("secret.bin"), sub.join("link.bin")).unwrap();
            let e = from_proto(&ext("link.bin", "0"), Some(&sub), &cpu())
                .unwrap_err()
                .to_string();
            assert!(e.contains("outside"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

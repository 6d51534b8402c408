//! Checkpoints in the safetensors format: named tensors plus string
//! metadata, readable and writable by PyTorch (`safetensors.torch`) and
//! NumPy. Names are the caller's; `sunrise::nn` uses the names PyTorch's
//! `state_dict` gives the same layers (`0.weight`, `bn.running_mean`), so
//! weights move both ways.
//!
//! Supported dtypes: f32, f64, i64, u8 (safetensors `F32`, `F64`, `I64`,
//! `U8`); values are stored little-endian whatever the host. Files are
//! written to a temporary file in the same directory and renamed into
//! place, so a crash never leaves a half-written checkpoint under the name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use sunrise_backend_api::DType;

use crate::device::Device;
use crate::tensor::Tensor;

/// Why a checkpoint could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, garbage, bad
    /// header or offsets).
    #[error("{}: corrupt checkpoint: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A tensor in the file has a dtype sunrise does not hold.
    #[error("{}: tensor {name:?} has dtype {dtype}, which sunrise cannot hold (f32, f64, i64, u8)", path.display())]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The safetensors dtype.
        dtype: String,
    },
    /// Tensors expected but absent from the file.
    #[error("{}: missing tensor(s): {}", path.display(), names.join(", "))]
    Missing {
        /// The file.
        path: PathBuf,
        /// The absent names, sorted.
        names: Vec<String>,
    },
    /// Tensors in the file that nothing expects.
    #[error("{}: unexpected tensor(s): {}", path.display(), names.join(", "))]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The extra names, sorted.
        names: Vec<String>,
    },
    /// A tensor whose shape differs from the one expected.
    #[error("{}: tensor {name:?} has shape {found:?}, expected {expected:?}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The shape expected.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor whose dtype differs from the one expected.
    #[error("{}: tensor {name:?} has dtype {found}, expected {expected}", path.display())]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype expected.
        expected: DType,
        /// The dtype in the file.
        found: DType,
    },
    /// A name given twice, or the reserved `__metadata__`.
    #[error("invalid tensor name {name:?}: {detail}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        detail: String,
    },
    /// Moving a tensor to or from its device failed.
    #[error("tensor {name:?}: {source}")]
    Tensor {
        /// The tensor.
        name: String,
        /// The error.
        #[source]
        source: Box<crate::Error>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn tensor_err(name: &str) -> impl FnOnce(crate::Error) -> CheckpointError + '_ {
    move |e| CheckpointError::Tensor {
        name: name.to_string(),
        source: Box::new(e),
    }
}

/// A tensor's dtype, shape and little-endian bytes on the host.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_le<T: crate::Element, const N: usize>(
    t: &Tensor,
    f: fn(T) -> [u8; N],
) -> crate::Result<Vec<u8>> {
    Ok(t.to_vec::<T>()?.into_iter().flat_map(f).collect())
}

fn host_tensor(t: &Tensor) -> crate::Result<HostTensor> {
    let (dtype, bytes) = match t.dtype() {
        DType::F32 => (Dtype::F32, to_le(t, f32::to_le_bytes)?),
        DType::F64 => (Dtype::F64, to_le(t, f64::to_le_bytes)?),
        DType::I64 => (Dtype::I64, to_le(t, i64::to_le_bytes)?),
        DType::U8 => (Dtype::U8, t.to_vec::<u8>()?),
    };
    Ok(HostTensor {
        dtype,
        shape: t.shape().to_vec(),
        bytes,
    })
}

/// Saves `tensors` (on any device, any layout) to `path`.
pub fn save(path: impl AsRef<Path>, tensors: &[(String, Tensor)]) -> Result<(), CheckpointError> {
    save_with_metadata(path, tensors, &BTreeMap::new())
}

/// Saves `tensors` and string `metadata` (the safetensors `__metadata__`
/// map; e.g. a model description) to `path`, through a temporary file in
/// the same directory renamed into place.
pub fn save_with_metadata(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    check_names(tensors.iter().map(|(n, _)| n))?;
    let mut host = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        host.push((name.clone(), host_tensor(t).map_err(tensor_err(name))?));
    }
    let info: Option<HashMap<String, String>> = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    let bytes =
        safetensors::serialize(host.iter().map(|(n, h)| (n.as_str(), h)), &info).map_err(|e| {
            CheckpointError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("cannot serialise: {e}"),
            }
        })?;
    write_atomically(path, &bytes)
}

fn check_names<'a>(names: impl Iterator<Item = &'a String>) -> Result<(), CheckpointError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if name == "__metadata__" {
            return Err(CheckpointError::InvalidName {
                name: name.clone(),
                detail: "reserved by safetensors for the metadata map".into(),
            });
        }
        if !seen.insert(name) {
            return Err(CheckpointError::InvalidName {
                name: name.clone(),
                detail: "given more than once".into(),
            });
        }
    }
    Ok(())
}

/// Writes `bytes` to a temporary sibling of `path`, syncs it and renames it
/// over `path`; the temporary file is removed on failure.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let file_name = path.file_name().ok_or_else(|| CheckpointError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        // Best effort: the temporary file may not exist at all.
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

/// The parsed file and its bytes.
fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(io_err(path))
}

fn parse<'b>(path: &Path, bytes: &'b [u8]) -> Result<SafeTensors<'b>, CheckpointError> {
    SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        detail: describe(&e, bytes.len()),
    })
}

fn describe(e: &SafeTensorError, len: usize) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => {
            format!("{len} bytes is too short for the 8-byte header length")
        }
        SafeTensorError::InvalidHeaderLength => {
            format!("the header length runs past the end of the file ({len} bytes): truncated?")
        }
        SafeTensorError::HeaderTooLarge => "the header length is implausibly large".into(),
        SafeTensorError::InvalidHeader => "the header is not UTF-8".into(),
        SafeTensorError::InvalidHeaderStart | SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not safetensors JSON".into()
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the tensor data does not match the file's length ({len} bytes): truncated or with trailing bytes"
        ),
        SafeTensorError::InvalidOffset(name) => format!("tensor {name:?} has invalid data offsets"),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte range does not match its shape and dtype".into()
        }
        SafeTensorError::ValidationOverflow => "a tensor's shape overflows".into(),
        other => format!("{other:?}"),
    }
}

fn sunrise_dtype(path: &Path, name: &str, d: Dtype) -> Result<DType, CheckpointError> {
    match d {
        Dtype::F32 => Ok(DType::F32),
        Dtype::F64 => Ok(DType::F64),
        Dtype::I64 => Ok(DType::I64),
        Dtype::U8 => Ok(DType::U8),
        other => Err(CheckpointError::UnsupportedDType {
            path: path.to_path_buf(),
            name: name.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

fn from_le<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

/// A tensor on `device` from little-endian bytes.
fn decode(dtype: DType, shape: &[usize], data: &[u8], device: &Device) -> crate::Result<Tensor> {
    match dtype {
        DType::F32 => Tensor::from_slice(&from_le(data, f32::from_le_bytes), shape, device),
        DType::F64 => Tensor::from_slice(&from_le(data, f64::from_le_bytes), shape, device),
        DType::I64 => Tensor::from_slice(&from_le(data, i64::from_le_bytes), shape, device),
        DType::U8 => Tensor::from_slice(data, shape, device),
    }
}

/// Loads every tensor of `path` onto `device`, sorted by name.
pub fn load(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let st = parse(path, &bytes)?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let dtype = sunrise_dtype(path, &name, view.dtype())?;
        let t = decode(dtype, view.shape(), view.data(), device).map_err(tensor_err(&name))?;
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The string metadata of `path` (empty when the file has none).
pub fn load_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>, CheckpointError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        detail: describe(&e, bytes.len()),
    })?;
    Ok(meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// What [`load_into_with`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Names copied into the given tensors, sorted.
    pub loaded: Vec<String>,
    /// Expected names absent from the file, sorted.
    pub missing: Vec<String>,
    /// Names in the file that nothing expected, sorted.
    pub unexpected: Vec<String>,
}

/// Copies the tensors of `path` into `expected` in place (through
/// [`Tensor::assign`], on each tensor's own device). Every expected name must
/// be in the file with the same shape and dtype, and the file must hold
/// nothing else; otherwise nothing is written and the error says what
/// differs.
pub fn load_into(
    path: impl AsRef<Path>,
    expected: &[(String, Tensor)],
) -> Result<(), CheckpointError> {
    load_into_with(path, expected, true).map(|_| ())
}

/// As [`load_into`]; with `strict` false, missing and unexpected names are
/// reported instead of being errors (shape and dtype mismatches still are).
/// Nothing is written unless every check passes.
pub fn load_into_with(
    path: impl AsRef<Path>,
    expected: &[(String, Tensor)],
    strict: bool,
) -> Result<LoadReport, CheckpointError> {
    let path = path.as_ref();
    check_names(expected.iter().map(|(n, _)| n))?;
    let bytes = read(path)?;
    let st = parse(path, &bytes)?;
    let wanted: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let in_file: BTreeSet<String> = st.names().into_iter().cloned().collect();
    let mut report = LoadReport {
        missing: wanted
            .iter()
            .filter(|n| !in_file.contains(**n))
            .map(|n| n.to_string())
            .collect(),
        unexpected: in_file
            .iter()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect(),
        loaded: Vec::new(),
    };
    if strict && !report.missing.is_empty() {
        return Err(CheckpointError::Missing {
            path: path.to_path_buf(),
            names: report.missing,
        });
    }
    if strict && !report.unexpected.is_empty() {
        return Err(CheckpointError::Unexpected {
            path: path.to_path_buf(),
            names: report.unexpected,
        });
    }
    let mut sources = Vec::new();
    for (name, target) in expected {
        let Ok(view) = st.tensor(name) else { continue };
        let dtype = sunrise_dtype(path, name, view.dtype())?;
        check_match(path, name, target, dtype, view.shape())?;
        sources.push((name, target, dtype, view));
    }
    for (name, target, dtype, view) in sources {
        let src =
            decode(dtype, view.shape(), view.data(), target.device()).map_err(tensor_err(name))?;
        assign(target, &src).map_err(tensor_err(name))?;
        report.loaded.push(name.clone());
    }
    report.loaded.sort();
    Ok(report)
}

fn check_match(
    path: &Path,
    name: &str,
    target: &Tensor,
    dtype: DType,
    shape: &[usize],
) -> Result<(), CheckpointError> {
    if target.shape() != shape {
        return Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: target.shape().to_vec(),
            found: shape.to_vec(),
        });
    }
    if target.dtype() != dtype {
        return Err(CheckpointError::DType {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: target.dtype(),
            found: dtype,
        });
    }
    Ok(())
}

/// Overwrites `target` with `src` without recording anything for autograd
/// (parameters are leaves that require grad).
fn assign(target: &Tensor, src: &Tensor) -> crate::Result<()> {
    crate::autograd::no_grad(|| target.assign(src))
}

//! Safe Rust views of the ABI's plain data: dtypes, tensor descriptors,
//! buffer handles, device properties and probe reports.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use crate::abi::*;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum DType {
    /// 32-bit float, the compute type.
    F32 = SR_DTYPE_F32,
    /// 64-bit float.
    F64 = SR_DTYPE_F64,
    /// 64-bit signed integer (indices, labels).
    I64 = SR_DTYPE_I64,
    /// Byte; boolean masks hold 0 or 1.
    U8 = SR_DTYPE_U8,
}

impl DType {
    /// Every dtype of ABI 1.0.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::I64, DType::U8];

    /// The dtype with ABI id `id`.
    pub const fn from_u32(id: u32) -> Option<DType> {
        match id {
            SR_DTYPE_F32 => Some(DType::F32),
            SR_DTYPE_F64 => Some(DType::F64),
            SR_DTYPE_I64 => Some(DType::I64),
            SR_DTYPE_U8 => Some(DType::U8),
            _ => None,
        }
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        dtype_size(self as u32)
    }

    /// Lower-case name (`f32`, `f64`, `i64`, `u8`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }

    /// True for f32 and f64.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend-owned buffer, opaque to everyone but the backend that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferHandle(NonNull<SrBuffer>);

// SAFETY: a handle is an opaque token; backends guarantee their buffers may
// be used from any thread (the trait requires `Send + Sync`).
unsafe impl Send for BufferHandle {}
// SAFETY: as above; the handle itself is never dereferenced by the host.
unsafe impl Sync for BufferHandle {}

impl BufferHandle {
    /// Wraps a raw handle; `None` for null.
    pub fn from_raw(ptr: *mut SrBuffer) -> Option<Self> {
        NonNull::new(ptr).map(BufferHandle)
    }

    /// Wraps a backend's own pointer to its buffer record.
    pub fn from_ptr<T>(ptr: NonNull<T>) -> Self {
        BufferHandle(ptr.cast())
    }

    /// The raw handle.
    pub fn as_raw(self) -> *mut SrBuffer {
        self.0.as_ptr()
    }

    /// The backend's own pointer back.
    pub fn cast<T>(self) -> NonNull<T> {
        self.0.cast()
    }
}

impl SrTensorDesc {
    /// Builds a descriptor. Panics if `shape.len() > SR_MAX_RANK` or the
    /// lengths differ (callers construct these from validated layouts).
    pub fn new(
        dtype: DType,
        shape: &[usize],
        strides: &[usize],
        buffer: BufferHandle,
        byte_offset: usize,
    ) -> Self {
        assert!(shape.len() <= SR_MAX_RANK && shape.len() == strides.len());
        let mut d = SrTensorDesc::empty();
        d.dtype = dtype as u32;
        d.rank = shape.len() as u32;
        for (k, (&n, &s)) in shape.iter().zip(strides).enumerate() {
            d.shape[k] = n as i64;
            d.strides[k] = s as i64;
        }
        d.buffer = buffer.as_raw();
        d.byte_offset = byte_offset as u64;
        d
    }

    /// The dtype, if known to this build.
    pub fn dtype(&self) -> Option<DType> {
        DType::from_u32(self.dtype)
    }

    /// Number of dims (clamped to `SR_MAX_RANK`).
    pub fn rank(&self) -> usize {
        (self.rank as usize).min(SR_MAX_RANK)
    }

    /// Extents, `rank` long.
    pub fn dims(&self) -> &[i64] {
        &self.shape[..self.rank()]
    }

    /// Strides in elements, `rank` long.
    pub fn steps(&self) -> &[i64] {
        &self.strides[..self.rank()]
    }

    /// Extents as `usize` (negative extents read as 0).
    pub fn dims_usize(&self) -> Vec<usize> {
        self.dims().iter().map(|&d| d.max(0) as usize).collect()
    }

    /// Number of elements (saturating at `usize::MAX` for absurd shapes).
    pub fn numel(&self) -> usize {
        self.dims()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(0) as usize))
            .unwrap_or(usize::MAX)
    }

    /// True when elements are laid out row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1i64;
        for k in (0..self.rank()).rev() {
            if self.shape[k] != 1 && self.strides[k] != expect {
                return false;
            }
            expect *= self.shape[k];
        }
        true
    }

    /// The buffer handle, if not null.
    pub fn buffer(&self) -> Option<BufferHandle> {
        BufferHandle::from_raw(self.buffer)
    }

    /// Largest byte offset touched plus one (0 for an empty view), or `None`
    /// when a stride or extent is negative or the arithmetic overflows.
    pub fn byte_extent(&self) -> Option<u64> {
        let size = dtype_size(self.dtype) as u64;
        if self.dims().contains(&0) {
            return Some(0);
        }
        let mut last: u64 = 0;
        for k in 0..self.rank() {
            if self.shape[k] < 0 || self.strides[k] < 0 {
                return None;
            }
            let span = (self.shape[k] as u64 - 1).checked_mul(self.strides[k] as u64)?;
            last = last.checked_add(span)?;
        }
        last.checked_add(1)?
            .checked_mul(size)?
            .checked_add(self.byte_offset)
    }
}

// SAFETY: a descriptor is plain data; the buffer pointer is an opaque handle
// whose thread-safety the backend guarantees.
unsafe impl Send for SrTensorDesc {}
// SAFETY: as above.
unsafe impl Sync for SrTensorDesc {}

/// A device as a backend describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// `SR_DEVICE_CPU`, `SR_DEVICE_CUDA`, ...
    pub kind: SrDeviceKind,
    /// Human-readable name.
    pub name: String,
    /// Total memory in bytes (0 when unknown).
    pub total_memory: u64,
    /// Free memory in bytes (0 when unknown).
    pub free_memory: u64,
    /// Compute capability (major, minor), where it applies.
    pub compute_capability: Option<(i32, i32)>,
    /// Driver version.
    pub driver_version: Option<String>,
    /// Library versions.
    pub library_versions: Option<String>,
    /// Free-form key/value attributes.
    pub attributes: Vec<(String, String)>,
}

/// What a plugin's probe said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeReport {
    /// ABI major the plugin implements.
    pub abi_major: u32,
    /// ABI minor the plugin implements.
    pub abi_minor: u32,
    /// Can it run here?
    pub usable: bool,
    /// Preference under `auto`.
    pub score: i32,
    /// Short backend name (`cpu`, `cuda`).
    pub name: String,
    /// When unusable: why.
    pub reason: String,
    /// When unusable: the missing component.
    pub component: String,
    /// When unusable: what to do.
    pub hint: String,
}

/// Copies `s` into a fixed C buffer, truncated at a char boundary, NUL-terminated.
pub fn write_c_buf(dst: &mut [c_char], s: &str) {
    if dst.is_empty() {
        return;
    }
    let mut n = s.len().min(dst.len() - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (d, &b) in dst.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = b as c_char;
    }
    dst[n] = 0;
}

/// Reads a fixed C buffer up to its first NUL (or its end), lossily.
pub fn read_c_buf(src: &[c_char]) -> String {
    let bytes: Vec<u8> = src
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads a NUL-terminated string, `None` for null.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
pub unsafe fn read_c_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated per the caller.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

impl ProbeReport {
    /// Writes this report into a probe struct, touching only fields that fit
    /// within the caller's `struct_size`.
    pub fn write_to(&self, info: &mut SrProbeInfo) {
        let size = info.struct_size;
        let end = |off: usize, len: usize| has_field(size, off + len);
        use std::mem::{offset_of, size_of};
        if end(offset_of!(SrProbeInfo, abi_minor), 4) {
            info.abi_major = self.abi_major;
            info.abi_minor = self.abi_minor;
        }
        if end(offset_of!(SrProbeInfo, score), 4) {
            info.usable = self.usable as u32;
            info.score = self.score;
        }
        if end(offset_of!(SrProbeInfo, name), size_of::<[c_char; 32]>()) {
            write_c_buf(&mut info.name, &self.name);
        }
        if end(offset_of!(SrProbeInfo, hint), size_of::<[c_char; 128]>()) {
            write_c_buf(&mut info.reason, &self.reason);
            write_c_buf(&mut info.component, &self.component);
            write_c_buf(&mut info.hint, &self.hint);
        }
    }

    /// Reads a probe struct the plugin filled.
    pub fn read_from(info: &SrProbeInfo) -> Self {
        ProbeReport {
            abi_major: info.abi_major,
            abi_minor: info.abi_minor,
            usable: info.usable != 0,
            score: info.score,
            name: read_c_buf(&info.name),
            reason: read_c_buf(&info.reason),
            component: read_c_buf(&info.component),
            hint: read_c_buf(&info.hint),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_buf_truncates_at_char_boundary() {
        let mut buf = [1 as c_char; 4];
        write_c_buf(&mut buf, "aé€");
        assert_eq!(read_c_buf(&buf), "aé");
        write_c_buf(&mut buf, "");
        assert_eq!(read_c_buf(&buf), "");
    }

    #[test]
    fn descriptor_extent_and_contiguity() {
        let h = BufferHandle::from_ptr(NonNull::<u8>::dangling());
        let d = SrTensorDesc::new(DType::F32, &[2, 3], &[3, 1], h, 8);
        assert!(d.is_contiguous());
        assert_eq!(d.byte_extent(), Some(8 + 6 * 4));
        let t = SrTensorDesc::new(DType::F32, &[3, 2], &[1, 3], h, 0);
        assert!(!t.is_contiguous());
        assert_eq!(t.byte_extent(), Some(24));
        let b = SrTensorDesc::new(DType::F64, &[4, 3], &[0, 1], h, 0);
        assert_eq!(b.byte_extent(), Some(24));
        let e = SrTensorDesc::new(DType::U8, &[0, 3], &[3, 1], h, 0);
        assert_eq!(e.byte_extent(), Some(0));
    }
}

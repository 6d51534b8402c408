//! What crosses from Rust to a CUDA C kernel: device pointers and
//! [`Strided`], a tensor's shape and strides passed by value (the C twin is
//! `Strided` in `kernels/common.cuh`), and the [`args!`] macro that turns a
//! list of values into the `void**` array `cuLaunchKernel` takes.

use cudarc::driver::sys::CUdeviceptr;
use sunrise_backend_api::abi::{SrTensorDesc, SR_MAX_RANK};
use sunrise_backend_api::{BackendError, DType, Result};

use crate::storage::CudaBuffer;

/// A tensor's layout as kernels see it. `#[repr(C)]`, passed by value; the
/// layout must match `struct Strided` in `kernels/common.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Strided {
    /// Extents; dims past `rank` are 1.
    pub shape: [i64; SR_MAX_RANK],
    /// Strides in elements; dims past `rank` are 0.
    pub strides: [i64; SR_MAX_RANK],
    /// Number of dims (0 for a scalar).
    pub rank: i32,
    /// 1 when the strides are the row-major ones of the shape.
    pub contiguous: i32,
}

impl Strided {
    /// From a descriptor (already checked).
    pub(crate) fn of(d: &SrTensorDesc) -> Strided {
        let mut s = Strided {
            shape: [1; SR_MAX_RANK],
            strides: [0; SR_MAX_RANK],
            rank: d.rank() as i32,
            contiguous: i32::from(d.is_contiguous()),
        };
        s.shape[..d.rank()].copy_from_slice(d.dims());
        s.strides[..d.rank()].copy_from_slice(d.steps());
        s
    }

    /// A contiguous layout of `shape`.
    pub(crate) fn contiguous(shape: &[usize]) -> Strided {
        let mut s = Strided {
            shape: [1; SR_MAX_RANK],
            strides: [0; SR_MAX_RANK],
            rank: shape.len() as i32,
            contiguous: 1,
        };
        let mut step = 1i64;
        for k in (0..shape.len()).rev() {
            s.shape[k] = shape[k] as i64;
            s.strides[k] = step;
            step *= shape[k] as i64;
        }
        s
    }

    /// Number of elements.
    pub(crate) fn numel(&self) -> usize {
        self.shape[..self.rank as usize]
            .iter()
            .map(|&n| n.max(0) as usize)
            .product()
    }
}

/// A checked view of one descriptor: device address of element 0, dtype,
/// extents and strides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub desc: &'a SrTensorDesc,
    pub dtype: DType,
    /// Address of the view's first element (buffer + byte offset).
    pub ptr: CUdeviceptr,
}

impl<'a> View<'a> {
    /// Checks the descriptor against its buffer (device, dtype, extent)
    /// and resolves its address.
    ///
    /// # Safety
    /// `desc.buffer` is null or a live buffer of this backend.
    pub(crate) unsafe fn new(desc: &'a SrTensorDesc, device: u32) -> Result<View<'a>> {
        let dtype = desc
            .dtype()
            .ok_or_else(|| BackendError::invalid(format!("unknown dtype id {}", desc.dtype)))?;
        if desc.rank as usize > SR_MAX_RANK {
            return Err(BackendError::invalid(format!(
                "rank {} exceeds {SR_MAX_RANK}",
                desc.rank
            )));
        }
        if desc.dims().iter().any(|&n| n < 0) {
            return Err(BackendError::invalid(format!(
                "negative extent in shape {:?}",
                desc.dims()
            )));
        }
        let handle = desc
            .buffer()
            .ok_or_else(|| BackendError::invalid("tensor has a null buffer"))?;
        // SAFETY: per this function's contract the handle is a live buffer
        // record of this backend.
        let buf: &CudaBuffer = unsafe { handle.cast::<CudaBuffer>().as_ref() };
        if buf.device != device {
            return Err(BackendError::invalid(format!(
                "a tensor lives on cuda:{} but the op runs on cuda:{device}",
                buf.device
            )));
        }
        if desc.numel() > 0 {
            let extent = desc.byte_extent().ok_or_else(|| {
                BackendError::invalid("tensor view has negative or overflowing strides")
            })?;
            if extent > buf.bytes as u64 {
                return Err(BackendError::invalid(format!(
                    "tensor view reaches byte {extent} of a {}-byte buffer",
                    buf.bytes
                )));
            }
        }
        Ok(View {
            desc,
            dtype,
            ptr: buf.ptr + desc.byte_offset,
        })
    }

    /// Extents.
    pub(crate) fn dims(&self) -> Vec<usize> {
        self.desc.dims_usize()
    }

    /// Number of elements.
    pub(crate) fn numel(&self) -> usize {
        self.desc.numel()
    }

    /// Kernel layout.
    pub(crate) fn strided(&self) -> Strided {
        Strided::of(self.desc)
    }

    /// True when row-major contiguous.
    pub(crate) fn is_contiguous(&self) -> bool {
        self.desc.is_contiguous()
    }
}

/// Builds the `&mut [*mut c_void]` that `cuLaunchKernel` takes, in the
/// kernel's parameter order. Each value is copied into a temporary that
/// lives to the end of the enclosing statement (the launch call), and the
/// driver copies the parameters before `cuLaunchKernel` returns.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &mut [$( (&mut { $v }) as *mut _ as *mut ::std::ffi::c_void ),*]
    };
}
pub(crate) use args;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_layout_matches_the_c_struct() {
        // struct Strided { long long shape[8]; long long strides[8]; int rank; int contiguous; }
        assert_eq!(std::mem::size_of::<Strided>(), 136);
        assert_eq!(std::mem::align_of::<Strided>(), 8);
        assert_eq!(std::mem::offset_of!(Strided, strides), 64);
        assert_eq!(std::mem::offset_of!(Strided, rank), 128);
        assert_eq!(std::mem::offset_of!(Strided, contiguous), 132);
    }

    #[test]
    fn contiguous_strides() {
        let s = Strided::contiguous(&[2, 3, 4]);
        assert_eq!(&s.strides[..3], &[12, 4, 1]);
        assert_eq!(s.numel(), 24);
        assert_eq!(s.contiguous, 1);
        assert_eq!(Strided::contiguous(&[]).numel(), 1);
    }
}

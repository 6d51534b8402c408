//! Host buffers: 64-byte aligned, zero-initialised, owned by the backend
//! and handed out as opaque [`BufferHandle`]s.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{BackendError, BufferHandle, Result, StatusCode};

/// Alignment of every buffer (one cache line; enough for AVX-512 loads).
pub const ALIGN: usize = 64;

/// One allocation. The handle points at this record.
#[derive(Debug)]
pub struct CpuBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

impl CpuBuffer {
    /// Allocates `len` zeroed bytes and returns the record's handle.
    pub fn alloc(len: usize) -> Result<BufferHandle> {
        let layout = Layout::from_size_align(len.max(1), ALIGN)
            .map_err(|_| BackendError::new(StatusCode::OutOfMemory, format!("cannot allocate {len} bytes")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or_else(|| {
            BackendError::new(
                StatusCode::OutOfMemory,
                format!("host allocation of {len} bytes failed"),
            )
        })?;
        let record = Box::new(CpuBuffer { ptr, len });
        Ok(BufferHandle::from_ptr(NonNull::from(Box::leak(record))))
    }

    /// Frees the record behind `h` and its memory.
    ///
    /// # Safety
    /// `h` came from [`CpuBuffer::alloc`] and is not used afterwards.
    pub unsafe fn free(h: BufferHandle) {
        // SAFETY: per the caller, `h` is a leaked Box<CpuBuffer>.
        let record = unsafe { Box::from_raw(h.cast::<CpuBuffer>().as_ptr()) };
        let layout = Layout::from_size_align(record.len.max(1), ALIGN).expect("layout was valid at alloc");
        // SAFETY: allocated with this layout in `alloc`.
        unsafe { dealloc(record.ptr.as_ptr(), layout) };
    }

    /// The record behind a handle.
    ///
    /// # Safety
    /// `h` came from [`CpuBuffer::alloc`] and is live.
    pub unsafe fn get<'a>(h: BufferHandle) -> &'a CpuBuffer {
        // SAFETY: per the caller.
        unsafe { &*h.cast::<CpuBuffer>().as_ptr() }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-byte buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the memory.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Checks `[offset, offset + len)` lies inside the buffer.
    pub fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(BackendError::invalid(format!(
                "range {offset}..{} is outside a buffer of {} bytes",
                offset.saturating_add(len),
                self.len
            ))),
        }
    }
}

/// Checks a descriptor: known dtype, rank, non-negative extents and strides,
/// and a view that lies inside its buffer. Returns the address of element 0.
///
/// # Safety
/// The descriptor's buffer handle, if non-null, is a live buffer of this backend.
pub unsafe fn checked_base(d: &SrTensorDesc) -> Result<*mut u8> {
    if d.dtype().is_none() {
        return Err(BackendError::unsupported(format!("unknown dtype id {}", d.dtype)));
    }
    if d.rank as usize > sunrise_backend_api::abi::SR_MAX_RANK {
        return Err(BackendError::invalid(format!("rank {} exceeds the maximum", d.rank)));
    }
    let extent = d
        .byte_extent()
        .ok_or_else(|| BackendError::invalid("negative or overflowing shape or strides"))?;
    let h = d.buffer().ok_or_else(|| BackendError::invalid("null buffer in tensor descriptor"))?;
    // SAFETY: per the caller.
    let b = unsafe { CpuBuffer::get(h) };
    if extent > b.len() as u64 {
        return Err(BackendError::invalid(format!(
            "view reaches byte {extent} of a {}-byte buffer",
            b.len()
        )));
    }
    // SAFETY: byte_offset <= extent <= len, so the pointer stays inside.
    Ok(unsafe { b.as_ptr().add(d.byte_offset as usize) })
}

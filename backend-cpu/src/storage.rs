//! Host buffers: 64-byte aligned, owned by the backend and handed out as
//! opaque [`BufferHandle`]s.
//!
//! Contents of a fresh buffer are unspecified (ops write every output
//! element). Large buffers are recycled through a small cache keyed by
//! rounded size, so the fresh output of an op does not page-fault on every
//! call. Debug builds fill every handed-out buffer with `0xFF` bytes (NaN,
//! -1, 255) so that a kernel relying on zeroed memory fails its tests.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Mutex;

use sunrise_backend_api::abi::SrTensorDesc;
use sunrise_backend_api::{BackendError, BufferHandle, Result, StatusCode};

/// Alignment of every buffer (one cache line; enough for AVX-512 loads).
pub const ALIGN: usize = 64;

/// One allocation. The handle points at this record.
#[derive(Debug)]
pub struct CpuBuffer {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

/// Buffers of at least this many bytes are recycled.
const CACHE_MIN: usize = 1 << 16;
/// Most bytes kept in the cache.
const CACHE_MAX_BYTES: usize = 1 << 29;

struct Cache {
    free: HashMap<usize, Vec<NonNull<u8>>>,
    bytes: usize,
}

// SAFETY: the cache owns the memory behind its pointers exclusively.
unsafe impl Send for Cache {}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// Capacity actually allocated for a request of `len` bytes.
fn capacity(len: usize) -> usize {
    if len < CACHE_MIN {
        len.max(1)
    } else {
        // Round up to a multiple of 1/8 of the power of two at or below
        // `len`: at most 12.5% slack, and few distinct sizes to cache.
        let floor_pow2 = 1usize << (usize::BITS - 1 - len.leading_zeros());
        let step = (floor_pow2 / 8).max(CACHE_MIN / 8);
        len.div_ceil(step) * step
    }
}

fn layout(cap: usize) -> Result<Layout> {
    Layout::from_size_align(cap, ALIGN).map_err(|_| {
        BackendError::new(
            StatusCode::OutOfMemory,
            format!("cannot allocate {cap} bytes"),
        )
    })
}

fn take_cached(cap: usize) -> Option<NonNull<u8>> {
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let c = g.as_mut()?;
    let p = c.free.get_mut(&cap)?.pop()?;
    c.bytes -= cap;
    Some(p)
}

/// Returns memory to the cache; `false` when it is full (caller frees).
fn put_cached(ptr: NonNull<u8>, cap: usize) -> bool {
    if cap < CACHE_MIN {
        return false;
    }
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let c = g.get_or_insert_with(|| Cache {
        free: HashMap::new(),
        bytes: 0,
    });
    if c.bytes + cap > CACHE_MAX_BYTES {
        return false;
    }
    c.bytes += cap;
    c.free.entry(cap).or_default().push(ptr);
    true
}

impl CpuBuffer {
    /// Allocates `len` bytes and returns the record's handle.
    pub fn alloc(len: usize) -> Result<BufferHandle> {
        let cap = capacity(len);
        let ptr = match take_cached(cap) {
            Some(p) => p,
            None => {
                let l = layout(cap)?;
                // SAFETY: the layout has a non-zero size.
                NonNull::new(unsafe { alloc(l) }).ok_or_else(|| {
                    BackendError::new(
                        StatusCode::OutOfMemory,
                        format!("host allocation of {len} bytes failed"),
                    )
                })?
            }
        };
        if cfg!(debug_assertions) {
            // SAFETY: `cap` bytes are owned by this allocation.
            unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0xFF, cap) };
        }
        let record = Box::new(CpuBuffer { ptr, len, cap });
        Ok(BufferHandle::from_ptr(NonNull::from(Box::leak(record))))
    }

    /// Frees the record behind `h` (its memory goes back to the cache or
    /// to the system allocator).
    ///
    /// # Safety
    /// `h` came from [`CpuBuffer::alloc`] and is not used afterwards.
    pub unsafe fn free(h: BufferHandle) {
        // SAFETY: per the caller, `h` is a leaked Box<CpuBuffer>.
        let record = unsafe { Box::from_raw(h.cast::<CpuBuffer>().as_ptr()) };
        if !put_cached(record.ptr, record.cap) {
            if let Ok(l) = layout(record.cap) {
                // SAFETY: allocated with this layout in `alloc`.
                unsafe { dealloc(record.ptr.as_ptr(), l) };
            }
        }
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
        return Err(BackendError::unsupported(format!(
            "unknown dtype id {}",
            d.dtype
        )));
    }
    if d.rank as usize > sunrise_backend_api::abi::SR_MAX_RANK {
        return Err(BackendError::invalid(format!(
            "rank {} exceeds the maximum",
            d.rank
        )));
    }
    let extent = d
        .byte_extent()
        .ok_or_else(|| BackendError::invalid("negative or overflowing shape or strides"))?;
    let h = d
        .buffer()
        .ok_or_else(|| BackendError::invalid("null buffer in tensor descriptor"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_rounds_large_sizes_with_bounded_slack() {
        assert_eq!(capacity(0), 1);
        assert_eq!(capacity(100), 100);
        for len in [CACHE_MIN, CACHE_MIN + 1, 1 << 20, (1 << 20) + 7, 3 << 22] {
            let c = capacity(len);
            assert!(c >= len && c - len <= len / 8, "{len} -> {c}");
        }
    }

    #[test]
    fn buffers_are_recycled_and_bounds_checked() {
        let h = CpuBuffer::alloc(1 << 20).unwrap();
        // SAFETY: live handle.
        let (p, b) = unsafe { (CpuBuffer::get(h).as_ptr(), CpuBuffer::get(h)) };
        assert_eq!(b.len(), 1 << 20);
        assert!(b.check_range(1 << 19, 1 << 19).is_ok());
        assert!(b.check_range(1 << 19, (1 << 19) + 1).is_err());
        assert!(b.check_range(usize::MAX, 2).is_err());
        // SAFETY: freed once.
        unsafe { CpuBuffer::free(h) };
        let h2 = CpuBuffer::alloc((1 << 20) - 5).unwrap();
        // SAFETY: live handle. Another test thread may take the cached
        // block first, so reuse is likely but not certain; either way the
        // buffer is usable and, in debug builds, poisoned.
        let b2 = unsafe { CpuBuffer::get(h2) };
        if cfg!(debug_assertions) {
            // SAFETY: the buffer holds len bytes.
            let s = unsafe { std::slice::from_raw_parts(b2.as_ptr(), b2.len()) };
            assert!(s.iter().all(|&x| x == 0xFF));
        }
        let _ = p;
        // SAFETY: freed once.
        unsafe { CpuBuffer::free(h2) };
    }
}

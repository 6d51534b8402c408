//! Device buffers and the caching allocator: a freed block goes back to a
//! per-size free list and the next allocation of that size class takes it,
//! so a training loop does no `cuMemAlloc` after its first step. All work
//! runs on one stream per device, so reuse in stream order is safe. When
//! the driver runs out of memory the cache is released and the allocation
//! retried once; a second failure is an `OutOfMemory` status with the sizes.

use std::collections::HashMap;

use cudarc::driver::{result, sys};
use sunrise_backend_api::{BackendError, Result, StatusCode};

/// A device buffer: what a `BufferHandle` points to.
#[derive(Debug)]
pub(crate) struct CudaBuffer {
    /// Index of the device that owns it.
    pub device: u32,
    /// Device address.
    pub ptr: sys::CUdeviceptr,
    /// Bytes the caller asked for.
    pub bytes: usize,
    /// Bytes reserved (its size class).
    pub capacity: usize,
}

impl CudaBuffer {
    /// Checks that `[offset, offset + len)` lies inside the buffer.
    pub(crate) fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes => Ok(()),
            _ => Err(BackendError::invalid(format!(
                "byte range {offset}..+{len} is outside a buffer of {} bytes",
                self.bytes
            ))),
        }
    }
}

/// Rounds a request up to its size class: 512-byte steps up to 1 MiB,
/// 2 MiB steps above. Zero-byte requests get the smallest class (a handle
/// must be a real allocation).
pub(crate) fn size_class(bytes: usize) -> usize {
    const SMALL: usize = 512;
    const LARGE: usize = 2 << 20;
    if bytes <= 1 << 20 {
        bytes.max(1).div_ceil(SMALL) * SMALL
    } else {
        bytes.div_ceil(LARGE) * LARGE
    }
}

/// One device's cache of free blocks.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    free: HashMap<usize, Vec<sys::CUdeviceptr>>,
    /// Bytes held in `free`.
    cached: usize,
    /// Bytes handed out and not yet freed.
    pub in_use: usize,
}

impl Pool {
    /// Takes a block of `capacity` bytes from the cache or the driver. The
    /// device's context must be current on this thread and `stream` idle
    /// enough to release cached blocks (it is synchronised first).
    pub(crate) fn alloc(
        &mut self,
        capacity: usize,
        stream: sys::CUstream,
    ) -> Result<sys::CUdeviceptr> {
        if let Some(ptr) = self.free.get_mut(&capacity).and_then(Vec::pop) {
            self.cached -= capacity;
            self.in_use += capacity;
            return Ok(ptr);
        }
        // SAFETY: the context is current (caller's contract); the size is
        // non-zero.
        let first = unsafe { result::malloc_sync(capacity) };
        let ptr = match first {
            Ok(p) => p,
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                self.release(stream)?;
                // SAFETY: as above.
                unsafe { result::malloc_sync(capacity) }.map_err(|e| self.oom(capacity, e))?
            }
            Err(e) => return Err(driver_error("cuMemAlloc", e)),
        };
        self.in_use += capacity;
        Ok(ptr)
    }

    /// Returns a block to the cache.
    pub(crate) fn free(&mut self, ptr: sys::CUdeviceptr, capacity: usize) {
        self.free.entry(capacity).or_default().push(ptr);
        self.cached += capacity;
        self.in_use = self.in_use.saturating_sub(capacity);
    }

    /// Bytes cached.
    pub(crate) fn cached(&self) -> usize {
        self.cached
    }

    /// Gives every cached block back to the driver, after the stream has
    /// finished with them.
    pub(crate) fn release(&mut self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: the stream belongs to the current context.
        unsafe { result::stream::synchronize(stream) }
            .map_err(|e| driver_error("cuStreamSynchronize", e))?;
        for (_, ptrs) in self.free.drain() {
            for p in ptrs {
                // SAFETY: every cached pointer came from cuMemAlloc in this
                // context and is referenced by no live buffer or queued work.
                unsafe { result::free_sync(p) }.map_err(|e| driver_error("cuMemFree", e))?;
            }
        }
        self.cached = 0;
        Ok(())
    }

    fn oom(&self, capacity: usize, e: result::DriverError) -> BackendError {
        let (free, total) = result::mem_get_info().unwrap_or((0, 0));
        BackendError::new(
            StatusCode::OutOfMemory,
            format!(
                "GPU out of memory: cannot allocate {} ({}); {} free of {}, {} in use by sunrise \
                 (the cache was released first)",
                human(capacity),
                e,
                human(free),
                human(total),
                human(self.in_use)
            ),
        )
        .with_hint("use a smaller batch, or free tensors that are no longer needed")
    }
}

/// Bytes for people: `1.5 GiB`.
pub(crate) fn human(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A driver error as a status; out-of-memory keeps its code.
pub(crate) fn driver_error(what: &str, e: result::DriverError) -> BackendError {
    let code = if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        StatusCode::OutOfMemory
    } else {
        StatusCode::Internal
    };
    BackendError::new(code, format!("{what} failed: {e}")).with_component("libcuda.so.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(size_class(0), 512);
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), 2 << 20);
        assert_eq!(size_class((2 << 20) + 1), 4 << 20);
        for b in [3usize, 999, 70_000, 5 << 20, 123_456_789] {
            let c = size_class(b);
            assert!(c >= b && c.is_multiple_of(512), "{b} -> {c}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn range_checks() {
        let b = CudaBuffer {
            device: 0,
            ptr: 0,
            bytes: 100,
            capacity: 512,
        };
        assert!(b.check_range(0, 100).is_ok());
        assert!(b.check_range(50, 50).is_ok());
        assert!(b.check_range(50, 51).is_err());
        assert!(b.check_range(usize::MAX, 2).is_err());
    }
}

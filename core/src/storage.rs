//! Device memory owned by a tensor's storage: one backend buffer, freed
//! through the backend that allocated it when the last view drops.

use sunrise_backend_api::BufferHandle;

use crate::device::Device;
use crate::error::{Error, Result};

/// One buffer on one device.
#[derive(Debug)]
pub struct Storage {
    device: Device,
    buffer: BufferHandle,
    bytes: usize,
}

impl Storage {
    /// Allocates `bytes` bytes on `device`.
    pub fn alloc(device: &Device, bytes: usize) -> Result<Storage> {
        let buffer = device
            .backend()
            .alloc(device.ordinal(), bytes)
            .map_err(|e| Error::backend(device.backend().name(), "alloc", e))?;
        Ok(Storage {
            device: device.clone(),
            buffer,
            bytes,
        })
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The backend's handle.
    pub fn handle(&self) -> BufferHandle {
        self.buffer
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Copies host bytes in at `offset`.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<()> {
        // SAFETY: `buffer` is live (owned by self) and from this backend.
        unsafe { self.device.backend().write(self.buffer, offset, src) }
            .map_err(|e| Error::backend(self.device.backend().name(), "write", e))
    }

    /// Copies bytes out from `offset`.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        // SAFETY: as in `write`.
        unsafe { self.device.backend().read(self.buffer, offset, dst) }
            .map_err(|e| Error::backend(self.device.backend().name(), "read", e))
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // SAFETY: the buffer came from this backend and is freed once.
        unsafe { self.device.backend().free(self.buffer) };
    }
}

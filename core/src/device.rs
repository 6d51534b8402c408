//! Devices: a backend (the linked CPU backend or a loaded plugin) and an
//! ordinal. Choosing one by name or `SUNRISE_DEVICE` goes through the
//! [`crate::registry`].

use std::collections::HashSet;
use std::sync::Arc;

use sunrise_backend_api::{Backend, DType, OpId};

use crate::error::Result;

/// The device attribute by which a backend says its `conv2d` accepts a
/// channels-last output.
const CHANNELS_LAST_CONV: &str = sunrise_backend_api::ops::CONV2D_CHANNELS_LAST_OUTPUT;

struct Inner {
    backend: Arc<dyn Backend>,
    ordinal: u32,
    label: String,
    builtin_cpu: bool,
    supported: HashSet<(u32, u32)>,
    channels_last_conv: bool,
}

/// Where a tensor lives. Cheap to clone; equal when backend and ordinal are.
#[derive(Clone)]
pub struct Device {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({})", self.inner.label)
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.inner.label)
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (std::ptr::addr_eq(
                Arc::as_ptr(&self.inner.backend),
                Arc::as_ptr(&other.inner.backend),
            ) && self.inner.ordinal == other.inner.ordinal)
    }
}

impl Eq for Device {}

impl Device {
    /// The CPU, through the backend linked into this library. Never fails
    /// and never loads a plugin.
    pub fn cpu() -> Device {
        crate::registry::builtin_cpu().clone()
    }

    /// A device by name: `cpu`, `cuda`, `cuda:1`, or `auto` (what
    /// `SUNRISE_DEVICE` accepts). Loads plugins on first use.
    pub fn parse(name: &str) -> Result<Device> {
        crate::registry::registry().device(name)
    }

    /// The device `SUNRISE_DEVICE` names (default `auto`).
    pub fn from_env() -> Result<Device> {
        crate::registry::registry().default_device()
    }

    /// Wraps device `ordinal` of any backend (for tests and embedders that
    /// load a backend themselves). `label` is how it prints, e.g. `cuda:0`.
    pub fn from_backend(
        backend: Arc<dyn Backend>,
        ordinal: u32,
        label: impl Into<String>,
    ) -> Device {
        Self::make(backend, ordinal, label.into(), false)
    }

    pub(crate) fn make(
        backend: Arc<dyn Backend>,
        ordinal: u32,
        label: String,
        builtin_cpu: bool,
    ) -> Device {
        let supported = backend
            .supported_ops()
            .iter()
            .map(|p| (p.op, p.dtype))
            .collect();
        let channels_last_conv = backend.device_info(ordinal).is_ok_and(|i| {
            i.attributes
                .iter()
                .any(|(k, v)| k == CHANNELS_LAST_CONV && v == "yes")
        });
        Device {
            inner: Arc::new(Inner {
                backend,
                ordinal,
                label,
                builtin_cpu,
                supported,
                channels_last_conv,
            }),
        }
    }

    /// The backend behind this device.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The device's index within its backend.
    pub fn ordinal(&self) -> u32 {
        self.inner.ordinal
    }

    /// How it prints (`cpu`, `cuda:0`).
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// True for the CPU backend linked into this library.
    pub fn is_builtin_cpu(&self) -> bool {
        self.inner.builtin_cpu
    }

    /// True when this device's `conv2d` writes channels-last outputs (its
    /// backend lists the attribute `conv2d.channels_last_output = yes`).
    pub fn writes_channels_last_conv(&self) -> bool {
        self.inner.channels_last_conv
    }

    /// Does the backend implement `op` on `dtype`?
    pub fn supports(&self, op: OpId, dtype: DType) -> bool {
        self.inner.supported.contains(&(op as u32, dtype as u32))
    }

    /// Sets an option of this device's backend (for every device of that
    /// backend), e.g. `set_backend_option("tf32", "on")` on a CUDA device to
    /// allow TF32 tensor cores in GEMM and convolution (strict f32 is the
    /// default; `SUNRISE_CUDA_TF32=1` does the same from the environment).
    /// A backend that has no such option, or a plugin built against ABI
    /// 1.0, answers with a typed error.
    ///
    /// ```
    /// let cpu = sunrise::Device::cpu();
    /// assert!(cpu.set_backend_option("tf32", "on").is_err()); // the CPU has no options
    /// ```
    pub fn set_backend_option(&self, key: &str, value: &str) -> Result<()> {
        self.backend()
            .set_option(key, value)
            .map_err(|e| crate::error::Error::backend(self.backend().name(), "set_option", e))
    }

    /// Waits for queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.backend()
            .synchronize(self.ordinal())
            .map_err(|e| crate::error::Error::backend(self.backend().name(), "synchronize", e))
    }
}

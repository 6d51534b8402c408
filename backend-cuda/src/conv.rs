//! Work in progress: the conv family on CUDA.

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, OpCall, Result};

use crate::device::Ctx;

/// The (op, dtype) pairs of this family.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    Vec::new()
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(_ctx: &mut Ctx<'_>, _device: u32, call: &OpCall<'_>) -> Result<()> {
    Err(BackendError::unsupported(format!("cuda: {} is not implemented yet", call.op)))
}
pub(crate) type ConvKey = u64;

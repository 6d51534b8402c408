//! Op family `conv` (to be implemented).

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, OpCall, Result};

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    Vec::new()
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    Err(BackendError::unsupported(format!("cpu: {} is not implemented", call.op)))
}

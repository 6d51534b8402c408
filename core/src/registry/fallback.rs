//! The count of ops that ran on the CPU because a plugin does not list the
//! (op, dtype) pair or answered `Unsupported` for it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use sunrise_backend_api::{DType, OpId};

/// Why an op ran on the CPU instead of its tensors' device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FallbackReason {
    /// The backend does not list the (op, dtype) pair: it was never asked.
    Unlisted,
    /// The backend lists the pair but answered `Unsupported` for this call
    /// (e.g. a shape or layout it does not handle).
    Unsupported,
}

impl FallbackReason {
    /// Stable lower-case name: `unlisted` or `unsupported`.
    pub const fn name(self) -> &'static str {
        match self {
            FallbackReason::Unlisted => "unlisted",
            FallbackReason::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How often one (backend, op, dtype) ran on the CPU for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackCount {
    /// The backend of the tensors' device (`cuda`, a plugin's name).
    pub backend: String,
    /// The op.
    pub op: OpId,
    /// The dtype of its first input (of its first output when it has none).
    pub dtype: DType,
    /// Why it ran on the CPU.
    pub reason: FallbackReason,
    /// How many calls, since the process started.
    pub count: u64,
}

impl fmt::Display for FallbackCount {
    /// `add i64 x180 (partial, unlisted)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} x{} ({}, {})",
            self.op.name(),
            self.dtype.name(),
            self.count,
            self.backend,
            self.reason
        )
    }
}

type Key = (String, OpId, DType, FallbackReason);

static FALLBACKS: Mutex<BTreeMap<Key, u64>> = Mutex::new(BTreeMap::new());

/// Records one op call that ran on the CPU instead of on `backend`.
pub(crate) fn count_fallback(backend: &str, op: OpId, dtype: DType, reason: FallbackReason) {
    let mut m = FALLBACKS.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry((backend.to_string(), op, dtype, reason))
        .or_insert(0) += 1;
}

/// Every op that fell back to the CPU so far, per (backend, op, dtype,
/// reason), ordered by backend, then op set order, dtype and reason.
pub fn fallback_report() -> Vec<FallbackCount> {
    let m = FALLBACKS.lock().unwrap_or_else(|e| e.into_inner());
    m.iter()
        .map(|((backend, op, dtype, reason), &count)| FallbackCount {
            backend: backend.clone(),
            op: *op,
            dtype: *dtype,
            reason: *reason,
            count,
        })
        .collect()
}

/// Ops that fell back to the CPU so far: `(backend, op, count)`, summed over
/// dtypes and reasons, ordered by backend and op name (see
/// [`fallback_report`] for the full view).
pub fn fallback_counts() -> Vec<(String, String, u64)> {
    let mut sums: BTreeMap<(String, String), u64> = BTreeMap::new();
    for f in fallback_report() {
        *sums
            .entry((f.backend, f.op.name().to_string()))
            .or_insert(0) += f.count;
    }
    sums.into_iter().map(|((b, o), n)| (b, o, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keep_dtype_and_reason_and_the_old_view_sums_them() {
        let b = "fallback-unit-test";
        count_fallback(b, OpId::Add, DType::I64, FallbackReason::Unlisted);
        count_fallback(b, OpId::Add, DType::I64, FallbackReason::Unlisted);
        count_fallback(b, OpId::Add, DType::F32, FallbackReason::Unsupported);
        let mine: Vec<FallbackCount> = fallback_report()
            .into_iter()
            .filter(|f| f.backend == b)
            .collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        assert_eq!(
            mine[0].to_string(),
            format!("add f32 x1 ({b}, unsupported)")
        );
        assert_eq!(mine[1].to_string(), format!("add i64 x2 ({b}, unlisted)"));
        let old: Vec<_> = fallback_counts()
            .into_iter()
            .filter(|(x, _, _)| x == b)
            .collect();
        assert_eq!(old, vec![(b.to_string(), "add".to_string(), 3)]);
        assert_eq!(FallbackReason::Unlisted.name(), "unlisted");
        assert_eq!(FallbackReason::Unsupported.name(), "unsupported");
    }
}

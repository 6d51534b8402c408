//! Op timing: where a program's time goes, per op and per op family.
//!
//! With `SUNRISE_PROFILE=1` in the environment (or after
//! [`set_enabled`]`(true)`), every op the front end hands to a backend is
//! timed around the backend's `execute`, fallbacks included, and counted
//! per [`OpId`]. Off, the cost is one relaxed atomic load per op. The
//! `sunrise` command prints [`summary`] on stderr before it exits when the
//! variable is set; `sunrise bench train` splits each training step with it.
//!
//! The times are wall-clock times of the calls on the calling thread: on
//! the CPU backend (synchronous) that is the kernel's time; on a device
//! whose `execute` only enqueues work it is the launch cost. What a step
//! spends outside these calls (shape checks, allocation, autograd
//! bookkeeping) is the step's time minus [`total`].

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use sunrise_backend_api::OpId;

/// Enough slots for every op id of op set v1 (ids are small and dense).
const SLOTS: usize = 256;

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static CALLS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static NANOS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// The environment variable that turns timing on (`1`, `true`, `yes`, `on`).
pub const PROFILE_VAR: &str = "SUNRISE_PROFILE";

/// Whether ops are being timed.
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => from_env(),
    }
}

#[cold]
fn from_env() -> bool {
    let on = std::env::var(PROFILE_VAR).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    });
    // Another thread may have called set_enabled meanwhile: keep its word.
    let _ = STATE.compare_exchange(
        UNKNOWN,
        if on { ON } else { OFF },
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    STATE.load(Ordering::Relaxed) == ON
}

/// Turns timing on or off for the whole process (overrides the variable).
pub fn set_enabled(on: bool) {
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Zeroes every count.
pub fn reset() {
    for (c, n) in CALLS.iter().zip(&NANOS) {
        c.store(0, Ordering::Relaxed);
        n.store(0, Ordering::Relaxed);
    }
}

/// Adds one call of `op` taking `took`.
pub(crate) fn record(op: OpId, took: Duration) {
    let i = op as usize;
    if i < SLOTS {
        CALLS[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        NANOS[i].fetch_add(ns, Ordering::Relaxed);
    }
}

/// The time of one op since the last [`reset`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpTime {
    /// The op.
    pub op: OpId,
    /// Calls.
    pub calls: u64,
    /// Seconds in the backend's `execute`, all calls together.
    pub seconds: f64,
}

/// Every op called since the last [`reset`], most time first.
pub fn snapshot() -> Vec<OpTime> {
    let mut v: Vec<OpTime> = OpId::ALL
        .iter()
        .filter_map(|&op| {
            let i = op as usize;
            let calls = CALLS.get(i)?.load(Ordering::Relaxed);
            (calls > 0).then(|| OpTime {
                op,
                calls,
                seconds: NANOS[i].load(Ordering::Relaxed) as f64 * 1e-9,
            })
        })
        .collect();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    v
}

/// Seconds of every op together.
pub fn total(times: &[OpTime]) -> f64 {
    times.iter().map(|t| t.seconds).sum()
}

/// The family an op's time is reported under: `matmul`, `conv`, `pool`,
/// `softmax/loss`, `norm`, `reduce`, `copy/layout`, `indexing` or
/// `elementwise`.
pub fn family(op: OpId) -> &'static str {
    use OpId::*;
    match op {
        Matmul => "matmul",
        Conv2d | Conv2dBackwardData | Conv2dBackwardFilter => "conv",
        MaxPool2d | MaxPool2dBackward | AvgPool2d | AvgPool2dBackward => "pool",
        Softmax | SoftmaxBackward | LogSoftmax | LogSoftmaxBackward | CrossEntropy
        | CrossEntropyBackward => "softmax/loss",
        LayerNorm | LayerNormBackward | BatchNorm | BatchNormBackward => "norm",
        Sum | Mean | Max | Min | Argmax => "reduce",
        Copy | Cast | Concat | Fill => "copy/layout",
        IndexSelect | IndexAdd => "indexing",
        _ => "elementwise",
    }
}

/// One family's share: name, calls, seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyTime {
    /// As [`family`] names it.
    pub family: &'static str,
    /// Calls of its ops.
    pub calls: u64,
    /// Seconds of its ops.
    pub seconds: f64,
}

/// `times` summed per [`family`], most time first.
pub fn by_family(times: &[OpTime]) -> Vec<FamilyTime> {
    let mut v: Vec<FamilyTime> = Vec::new();
    for t in times {
        let f = family(t.op);
        match v.iter_mut().find(|x| x.family == f) {
            Some(x) => {
                x.calls += t.calls;
                x.seconds += t.seconds;
            }
            None => v.push(FamilyTime {
                family: f,
                calls: t.calls,
                seconds: t.seconds,
            }),
        }
    }
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    v
}

/// A table of `times`: per family, then per op, with calls, milliseconds
/// and share of the ops' total.
pub fn summary(times: &[OpTime]) -> String {
    let all = total(times);
    let share = |s: f64| if all > 0.0 { 100.0 * s / all } else { 0.0 };
    let mut out = format!(
        "op time (SUNRISE_PROFILE): {:.3} ms in {} calls\n",
        all * 1e3,
        times.iter().map(|t| t.calls).sum::<u64>()
    );
    out.push_str("  family          calls        ms   share\n");
    for f in by_family(times) {
        out.push_str(&format!(
            "  {:<14} {:>6} {:>9.3} {:>6.1}%\n",
            f.family,
            f.calls,
            f.seconds * 1e3,
            share(f.seconds)
        ));
    }
    out.push_str("  op                       calls        ms   share   us/call\n");
    for t in times {
        out.push_str(&format!(
            "  {:<22} {:>8} {:>9.3} {:>6.1}% {:>9.2}\n",
            t.op.name(),
            t.calls,
            t.seconds * 1e3,
            share(t.seconds),
            t.seconds * 1e6 / t.calls.max(1) as f64
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_a_slot_and_a_family() {
        for &op in OpId::ALL {
            assert!((op as usize) < SLOTS, "{op} has no slot");
            assert!(!family(op).is_empty());
        }
        assert_eq!(family(OpId::Matmul), "matmul");
        assert_eq!(family(OpId::Conv2dBackwardFilter), "conv");
        assert_eq!(family(OpId::Add), "elementwise");
    }

    #[test]
    fn families_sum_their_ops_and_sort_by_time() {
        let times = [
            OpTime {
                op: OpId::Add,
                calls: 2,
                seconds: 0.001,
            },
            OpTime {
                op: OpId::Mul,
                calls: 3,
                seconds: 0.002,
            },
            OpTime {
                op: OpId::Matmul,
                calls: 1,
                seconds: 0.004,
            },
        ];
        let f = by_family(&times);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].family, f[0].calls), ("matmul", 1));
        assert_eq!((f[1].family, f[1].calls), ("elementwise", 5));
        assert!((f[1].seconds - 0.003).abs() < 1e-12);
        assert!((total(&times) - 0.007).abs() < 1e-12);
        let s = summary(&times);
        assert!(s.contains("matmul") && s.contains("57.1%"), "{s}");
    }
}

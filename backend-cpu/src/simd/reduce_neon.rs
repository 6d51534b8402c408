//! NEON (aarch64) versions of the f32 row sum and row max. Compiled only on
//! aarch64; they follow the same contract as the portable kernels in
//! `reduce_kernels.rs` (sum accumulated in f64, max NaN-propagating).

use std::arch::aarch64::*;

/// Sum of `x`, accumulated in f64 lanes.
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_row_sum_f32(x: &[f32]) -> f64 {
    let (n, p) = (x.len(), x.as_ptr());
    let z = vdupq_n_f64(0.0);
    let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, so both 4-lane loads stay inside `x`.
        let (v0, v1) = unsafe { (vld1q_f32(p.add(i)), vld1q_f32(p.add(i + 4))) };
        a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(v0)));
        a1 = vaddq_f64(a1, vcvt_high_f64_f32(v0));
        a2 = vaddq_f64(a2, vcvt_f64_f32(vget_low_f32(v1)));
        a3 = vaddq_f64(a3, vcvt_high_f64_f32(v1));
        i += 8;
    }
    let mut s = vaddvq_f64(vaddq_f64(vaddq_f64(a0, a1), vaddq_f64(a2, a3)));
    for &v in &x[i..] {
        s += v as f64;
    }
    s
}

/// Largest element of `x` (NaN if any is NaN, -inf if empty).
///
/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_row_max_f32(x: &[f32]) -> f32 {
    let (n, p) = (x.len(), x.as_ptr());
    let (mut m0, mut m1) = (
        vdupq_n_f32(f32::NEG_INFINITY),
        vdupq_n_f32(f32::NEG_INFINITY),
    );
    let mut bad = vdupq_n_u32(0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, so both 4-lane loads stay inside `x`.
        let (v0, v1) = unsafe { (vld1q_f32(p.add(i)), vld1q_f32(p.add(i + 4))) };
        m0 = vmaxq_f32(m0, v0);
        m1 = vmaxq_f32(m1, v1);
        let ok = vandq_u32(vceqq_f32(v0, v0), vceqq_f32(v1, v1));
        bad = vorrq_u32(bad, vmvnq_u32(ok));
        i += 8;
    }
    let mut m = vmaxvq_f32(vmaxq_f32(m0, m1));
    let mut nan = vmaxvq_u32(bad) != 0;
    for &v in &x[i..] {
        nan |= v.is_nan();
        if v > m {
            m = v;
        }
    }
    if nan {
        f32::NAN
    } else {
        m
    }
}

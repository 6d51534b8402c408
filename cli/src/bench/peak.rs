//! The arithmetic peak of a tier, measured in the run: GFLOP/s of
//! independent multiply-add chains that live in registers, on `threads`
//! threads at once. `bench gemm` prints its figures as a fraction of this,
//! since a ratio to a peer says nothing about how much room is left.
//!
//! AVX-512 and AVX2 count one FMA as two flops; SSE2 (which has no FMA)
//! issues separate multiplies and adds, as its GEMM kernel does. The
//! portable tier and other architectures have no peak here.

use std::hint::black_box;
use std::time::Instant;

use sunrise_backend_cpu::isa::Isa;

/// Iterations of one measurement (12 or 14 vector operations each) per thread.
const ITERS: usize = 20_000_000;

/// Best of five measurements of the peak of `tier` on `threads` threads,
/// in GFLOP/s; `None` where this tier has no peak kernel here (portable,
/// NEON) or the CPU lacks it.
pub(crate) fn fma_peak(tier: Isa, threads: usize) -> Option<f64> {
    let (kernel, flops_per_iter) = kernel(tier)?;
    let threads = threads.max(1);
    let once = || {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| black_box(kernel(black_box(ITERS))));
            }
        });
        start.elapsed().as_secs_f64()
    };
    let best = (0..5).map(|_| once()).fold(f64::INFINITY, f64::min);
    Some(flops_per_iter * (ITERS * threads) as f64 / best / 1e9)
}

/// A chain kernel: runs its iterations and returns a value to keep alive.
type ChainFn = fn(usize) -> f32;

/// The chain kernel of `tier` (as a safe function pointer that checks
/// nothing: only returned when the CPU has the features) and its flops
/// per iteration.
fn kernel(tier: Isa) -> Option<(ChainFn, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        match tier {
            Isa::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
                Some((x86::run_avx512, 12.0 * 16.0 * 2.0))
            }
            Isa::Avx2
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma") =>
            {
                Some((x86::run_avx2, 12.0 * 8.0 * 2.0))
            }
            Isa::Sse2 => Some((x86::run_sse2, 14.0 * 4.0)),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = tier;
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// 12 chains of 512-bit FMAs.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(iters: usize) -> f32 {
        let (b, c) = (
            _mm512_set1_ps(black_box(1.0)),
            _mm512_set1_ps(black_box(1e-9)),
        );
        let mut acc = [_mm512_set1_ps(black_box(0.5)); 12];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, b, c);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }

    /// 12 chains of 256-bit FMAs.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(iters: usize) -> f32 {
        let (b, c) = (
            _mm256_set1_ps(black_box(1.0)),
            _mm256_set1_ps(black_box(1e-9)),
        );
        let mut acc = [_mm256_set1_ps(black_box(0.5)); 12];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, b, c);
            }
        }
        acc.iter().map(|&a| _mm256_cvtss_f32(a)).sum()
    }

    /// 7 chains of multiplies beside 7 chains of adds (SSE2 has no FMA).
    fn sse2(iters: usize) -> f32 {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe {
            let (b, c) = (_mm_set1_ps(black_box(1.0)), _mm_set1_ps(black_box(1e-9)));
            let mut mul = [_mm_set1_ps(black_box(0.5)); 7];
            let mut add = [_mm_set1_ps(black_box(0.5)); 7];
            for _ in 0..iters {
                for (m, a) in mul.iter_mut().zip(&mut add) {
                    *m = _mm_mul_ps(*m, b);
                    *a = _mm_add_ps(*a, c);
                }
            }
            mul.iter().chain(&add).map(|&a| _mm_cvtss_f32(a)).sum()
        }
    }

    pub(super) fn run_avx512(iters: usize) -> f32 {
        // SAFETY: only handed out after AVX-512F was detected.
        unsafe { avx512(iters) }
    }

    pub(super) fn run_avx2(iters: usize) -> f32 {
        // SAFETY: only handed out after AVX2 and FMA were detected.
        unsafe { avx2(iters) }
    }

    pub(super) fn run_sse2(iters: usize) -> f32 {
        sse2(iters)
    }
}

//! Op family `gemm`: batched `matmul`, and the GEMM entry point
//! ([`gemm`]) that the convolution kernels share.
//!
//! Two engines compute `C = alpha A B + beta C`:
//! - the `gemm` crate, which picks its kernels from CPU detection alone
//!   (AVX-512F, else FMA, else scalar) and cannot be capped;
//! - our packed BLIS-style GEMM ([`driver`]) with register-blocked
//!   micro-kernels per ISA tier ([`kernels`], `simd/gemm_*.rs`).
//!
//! The rule: the `gemm` crate serves when the tier it picks equals
//! [`isa::tier()`]; otherwise (a lower `SUNRISE_CPU_ISA` cap, or a CPU where
//! the two detections disagree) our kernels for [`isa::tier()`] serve, so no
//! instruction above the chosen tier ever runs.

mod driver;
mod kernels;
mod matmul;
mod rows;
#[cfg(test)]
mod tests;

#[cfg(target_arch = "x86_64")]
#[path = "simd/gemm_avx2.rs"]
mod gemm_avx2;
#[cfg(target_arch = "x86_64")]
#[path = "simd/gemm_avx512.rs"]
mod gemm_avx512;
#[cfg(target_arch = "x86_64")]
#[path = "simd/gemm_sse2.rs"]
mod gemm_sse2;

use std::sync::OnceLock;

use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Float;
use crate::isa::{self, Isa};
use crate::strided::check_arity;
use crate::threads;

pub(crate) use driver::{packed_gemm, with_scratch_pair};
pub(crate) use kernels::{GemmKernel, KernelTable};

/// Problems below this many multiply-adds (`m n k`) stay on one thread.
pub(crate) const PAR_MIN_WORK: usize = 64 * 64 * 64;

/// The element types GEMM runs on (f32, f64), with their kernel in a table.
pub(crate) trait GemmScalar: Float {
    /// This dtype's micro-kernel in `table`.
    fn kernel(table: &KernelTable) -> &GemmKernel<Self>;
}

impl GemmScalar for f32 {
    fn kernel(table: &KernelTable) -> &GemmKernel<f32> {
        &table.f32
    }
}

impl GemmScalar for f64 {
    fn kernel(table: &KernelTable) -> &GemmKernel<f64> {
        &table.f64
    }
}

/// A read-only strided matrix: element `(i, j)` at `ptr + i rs + j cs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<T> {
    /// Element `(0, 0)`.
    pub ptr: *const T,
    /// Row stride in elements.
    pub rs: usize,
    /// Column stride in elements.
    pub cs: usize,
}

// SAFETY: a raw window into a buffer that outlives the GEMM using it; only
// read through.
unsafe impl<T: Sync> Send for MatRef<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for MatRef<T> {}

/// A writable matrix with unit column stride: `(i, j)` at `ptr + i rs + j`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatMut<T> {
    /// Element `(0, 0)`.
    pub ptr: *mut T,
    /// Row stride in elements.
    pub rs: usize,
}

/// One GEMM: `C[m x n] = alpha A[m x k] B[k x n] + beta C` (`beta == 0`:
/// `C` is not read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GemmCall<T> {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Left operand.
    pub a: MatRef<T>,
    /// Right operand.
    pub b: MatRef<T>,
    /// Output.
    pub c: MatMut<T>,
    /// Scale of the product.
    pub alpha: T,
    /// Scale of the prior `C`.
    pub beta: T,
}

// SAFETY: a call is a set of raw windows into buffers that stay alive for the
// duration of the `execute` call; the GEMM engines write disjoint tiles of
// `c` from different threads and only read `a` and `b`.
unsafe impl<T: Send> Send for GemmCall<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for GemmCall<T> {}

/// Whether a GEMM may use the thread pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// Stay on the calling thread (the caller parallelises around it).
    Single,
    /// Use the pool when the problem is large enough.
    Auto,
}

/// The tier the `gemm` crate would pick on this CPU (`None`: its scalar
/// kernels, which match no tier of ours).
pub(crate) fn crate_tier() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(Isa::Avx512);
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return Some(Isa::Avx2);
        }
        None
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Isa::Neon)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

/// True when the `gemm` crate serves: its tier is exactly ours, unless
/// `SUNRISE_GEMM=own` asks for our engine (`crate`, the default, keeps the
/// rule; the crate is never used above the tier in use).
pub(crate) fn uses_crate() -> bool {
    static USE: OnceLock<bool> = OnceLock::new();
    *USE.get_or_init(|| {
        let own = std::env::var("SUNRISE_GEMM").is_ok_and(|v| v.trim() == "own");
        !own && crate_tier() == Some(isa::tier())
    })
}

/// Multiply-adds from which a GEMM with a transposed operand goes to our
/// engine instead of the `gemm` crate.
const OWN_TRANSPOSED_MIN_WORK: usize = 1 << 22;

/// Whether the `gemm` crate may serve this call: both operands row-major
/// (unit column stride), or a small problem. With a transposed operand of
/// a large problem (a weight used as `W^T`, the `x^T dy` of a weight
/// gradient, attention's `K^T`) the crate's generic packing path made
/// training steps slower than our engine, which packs any strides at the
/// same cost; below about 4M multiply-adds (the GEMMs of convolutions on
/// 8x8 images) the crate stays ahead. Measured with `sunrise bench train`,
/// one thread, AVX-512, per step, crate everywhere -> this rule: MLP 3.6 ->
/// 2.7-2.9 ms, transformer 44.2 -> 34.5-35.4 ms, digits CNN 0.90 -> 0.87-0.91
/// ms (our engine everywhere: 1.05-1.09 ms).
fn crate_serves<T>(call: &GemmCall<T>) -> bool {
    let row_major = (call.a.cs == 1 || call.k == 1) && (call.b.cs == 1 || call.n == 1);
    row_major || call.m.saturating_mul(call.n).saturating_mul(call.k) < OWN_TRANSPOSED_MIN_WORK
}

/// Runs one GEMM on the engine the dispatch rule picks.
///
/// # Safety
/// `a` and `b` are readable at every `(i, j)` of their `m x k` and `k x n`
/// extents, `c` is writable at every `(i, j)` of `m x n` and overlaps neither
/// (nor is touched by another thread meanwhile).
pub(crate) unsafe fn gemm<T: GemmScalar>(call: &GemmCall<T>, threads: Threads) {
    if call.m == 0 || call.n == 0 {
        return;
    }
    if call.k == 0 {
        // SAFETY: forwarded from the caller.
        unsafe { scale_c(call) };
        return;
    }
    let work = call.m.saturating_mul(call.n).saturating_mul(call.k);
    let parallel = threads == Threads::Auto && work >= PAR_MIN_WORK && threads::num_threads() > 1;
    if uses_crate() && crate_serves(call) {
        // SAFETY: forwarded from the caller.
        unsafe { crate_gemm(call, parallel) }
    } else {
        let kernel = T::kernel(kernels::table());
        // SAFETY: forwarded; the table holds only kernels this CPU runs.
        unsafe { packed_gemm(kernel, call, parallel) }
    }
}

/// `C = beta C` (`k == 0`: the product is empty).
///
/// # Safety
/// As [`gemm`].
unsafe fn scale_c<T: Float>(call: &GemmCall<T>) {
    for i in 0..call.m {
        // SAFETY: row i of C is n writable elements, per the caller.
        let row = unsafe { std::slice::from_raw_parts_mut(call.c.ptr.add(i * call.c.rs), call.n) };
        for v in row {
            *v = if call.beta == T::ZERO {
                T::ZERO
            } else {
                call.beta * *v
            };
        }
    }
}

/// Runs one GEMM through the `gemm` crate (whose convention is
/// `dst = alpha dst + beta lhs rhs`, the reverse of ours).
///
/// # Safety
/// As [`gemm`], with `m, n, k > 0`.
pub(crate) unsafe fn crate_gemm<T: GemmScalar>(call: &GemmCall<T>, parallel: bool) {
    let run = move |par: gemm::Parallelism| {
        let g = call;
        // SAFETY: the extents and strides describe memory the caller
        // guarantees readable (a, b) and writable (c); strides fit isize
        // because the views lie inside allocations.
        unsafe {
            gemm::gemm(
                g.m,
                g.n,
                g.k,
                g.c.ptr,
                1,
                g.c.rs as isize,
                g.beta != T::ZERO,
                g.a.ptr,
                g.a.cs as isize,
                g.a.rs as isize,
                g.b.ptr,
                g.b.cs as isize,
                g.b.rs as isize,
                g.beta,
                g.alpha,
                false,
                false,
                false,
                par,
            )
        }
    };
    if parallel {
        let n = threads::num_threads();
        threads::install(|| run(gemm::Parallelism::Rayon(n)));
    } else {
        run(gemm::Parallelism::None);
    }
}

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    [DType::F32, DType::F64]
        .iter()
        .map(|&d| SrOpSupport {
            op: OpId::Matmul as u32,
            dtype: d as u32,
        })
        .collect()
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    if call.op != OpId::Matmul {
        return Err(BackendError::unsupported(format!(
            "cpu gemm: {} is not a gemm op",
            call.op
        )));
    }
    let Params::Matmul(p) = call.params else {
        return Err(BackendError::invalid("matmul: expected MatmulParams"));
    };
    check_arity("matmul", call.inputs.len(), call.outputs.len(), 2, 1)?;
    // SAFETY: forwarded from the caller for each dtype.
    unsafe {
        match call.inputs[0].dtype() {
            Some(DType::F32) => matmul::matmul::<f32>(call, &p),
            Some(DType::F64) => matmul::matmul::<f64>(call, &p),
            other => Err(BackendError::unsupported(format!(
                "matmul: dtype {} is not supported (f32, f64)",
                other.map_or("unknown", |d| d.name())
            ))),
        }
    }
}

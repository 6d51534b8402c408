//! Op family `reduce`: `sum`, `mean`, `max`, `min` over any set of axes and
//! `argmax` along one axis; plus the validation helpers the other families
//! of this crate's softmax/norm/indexing/loss files share.
//!
//! Semantics:
//! - The output keeps every reduced dim with extent 1; mask 0 is a copy,
//!   all axes give a `[1, 1, ..]` output.
//! - f32 sums (and means) accumulate in f64 (SIMD f64 lanes, see
//!   `simd/reduce_kernels.rs`), then round once to f32.
//! - `max`/`min` propagate NaN: a NaN anywhere in the reduced set gives NaN.
//!   `argmax` treats NaN as larger than every number: the index of the first
//!   NaN wins; otherwise the first maximum wins.
//! - Reducing an empty set: `sum` gives 0, `mean` gives NaN (0/0), `max`,
//!   `min` and `argmax` are `InvalidArgument`.
//!
//! Plan: size-1 dims are dropped, the rest ordered by input stride (the
//! smallest innermost) and adjacent dims coalesced. When the innermost dim
//! is reduced, each output folds whole rows with a row kernel; when it is
//! kept, rows of the input are accumulated into an accumulator row (inner
//! loop contiguous, never strided over a reduced axis). Large reductions are
//! split into fixed-size pieces run on the pool and merged in a fixed order,
//! so results do not depend on the thread count.

#[path = "simd/reduce_kernels.rs"]
pub(crate) mod kernels;
#[cfg(target_arch = "aarch64")]
#[path = "simd/reduce_neon.rs"]
mod neon;
#[path = "simd/reduce_plan.rs"]
mod plan;
// AVX-512 intrinsics are stable since Rust 1.89, which the `gemm` crate's
// `x86-v4` feature already requires of the workspace.
#[clippy::msrv = "1.89"]
#[path = "simd/reduce_vec.rs"]
pub(crate) mod vec;

use sunrise_backend_api::abi::{SrOpSupport, SrTensorDesc};
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Params, Result};

use crate::element::Element;
use crate::strided::{check_arity, View};
use kernels::ReduceKernels;
use plan::Fold;

/// `(op, dtype)` pairs for every combination.
pub(crate) fn pairs(ops: &[OpId], dtypes: &[DType]) -> Vec<SrOpSupport> {
    let mut v = Vec::new();
    for &op in ops {
        for &dtype in dtypes {
            v.push(SrOpSupport {
                op: op as u32,
                dtype: dtype as u32,
            });
        }
    }
    v
}

/// The (op, dtype) pairs this family implements.
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use DType::*;
    use OpId::*;
    let mut v = pairs(&[Sum, Max, Min, Argmax], &[F32, F64, I64]);
    v.extend(pairs(&[Mean], &[F32, F64]));
    v
}

/// The dtype of `d`, or an error naming `what`.
pub(crate) fn dtype_of(op: OpId, what: &str, d: &SrTensorDesc) -> Result<DType> {
    d.dtype().ok_or_else(|| {
        BackendError::invalid(format!("{op}: {what} has unknown dtype id {}", d.dtype))
    })
}

/// Fails unless `got == want`.
pub(crate) fn expect_shape(op: OpId, what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(BackendError::invalid(format!(
            "{op}: {what} has shape {got:?}, expected {want:?}"
        )))
    }
}

/// An input view of `d` as `T`.
///
/// # Safety
/// As [`View::new`].
pub(crate) unsafe fn in_view<T: Element>(
    op: OpId,
    what: &str,
    d: &SrTensorDesc,
) -> Result<View<T>> {
    // SAFETY: per the caller.
    let v = unsafe { View::new(d) }
        .map_err(|e| BackendError::new(e.code, format!("{op}: {what}: {}", e.message)))?;
    // Broadcast (stride-0) views pass the bounds check with any extents;
    // their element count must still fit a usize.
    if v.shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .is_none()
    {
        return Err(BackendError::invalid(format!(
            "{op}: {what} has more elements than a usize can count"
        )));
    }
    Ok(v)
}

/// An output view of `d` as `T`: shape `want`, contiguous.
///
/// # Safety
/// As [`View::new`].
pub(crate) unsafe fn out_view<T: Element>(
    op: OpId,
    what: &str,
    d: &SrTensorDesc,
    want: &[usize],
) -> Result<View<T>> {
    // SAFETY: per the caller.
    let v = unsafe { in_view::<T>(op, what, d) }?;
    expect_shape(op, what, &v.shape, want)?;
    if !v.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{op}: {what} must be contiguous"
        )));
    }
    Ok(v)
}

/// The error for a dtype an op does not implement.
pub(crate) fn unsupported_dtype(op: OpId, dtype: DType) -> BackendError {
    BackendError::unsupported(format!("cpu: {op} is not implemented for {dtype}"))
}

/// The axis of an [`AxisParams`](sunrise_backend_api::AxisParams) op,
/// checked against `rank`.
pub(crate) fn axis_param(call: &OpCall<'_>, rank: usize) -> Result<usize> {
    let Params::Axis(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{}: expected axis params",
            call.op
        )));
    };
    let axis = p.axis as usize;
    if axis >= rank {
        return Err(BackendError::invalid(format!(
            "{}: axis {axis} is out of range for rank {rank}",
            call.op
        )));
    }
    Ok(axis)
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 1, 1)?;
    let Params::Reduce(p) = call.params else {
        return Err(BackendError::invalid(format!(
            "{op}: expected reduce params"
        )));
    };
    let (xd, od) = (&call.inputs[0], &call.outputs[0]);
    let rank = xd.rank();
    if rank < 64 && p.axes_mask >> rank != 0 {
        return Err(BackendError::invalid(format!(
            "{op}: axes mask {:#x} names an axis beyond rank {rank}",
            p.axes_mask
        )));
    }
    let mask = p.axes_mask;
    let dtype = dtype_of(op, "input", xd)?;
    let want: Vec<usize> = (0..rank)
        .map(|k| {
            if mask >> k & 1 == 1 {
                1
            } else {
                xd.dims_usize()[k]
            }
        })
        .collect();
    let k = kernels::table();
    let r = Reduction {
        op,
        xd,
        od,
        mask,
        want: &want,
    };
    use DType::*;
    use OpId::*;
    // SAFETY: descriptors per the caller; every arm checks dtypes and shapes.
    unsafe {
        match (op, dtype) {
            (Argmax, F32) => argmax::<f32>(&r),
            (Argmax, F64) => argmax::<f64>(&r),
            (Argmax, I64) => argmax::<i64>(&r),
            (Sum | Mean, F32) => r.run(&SumF32 {
                k,
                mean: op == Mean,
            }),
            (Sum | Mean, F64) => r.run(&SumF64 { mean: op == Mean }),
            (Sum, I64) => r.run(&SumI64),
            (Max, F32) => r.run(&ExtF32::<true> { k }),
            (Min, F32) => r.run(&ExtF32::<false> { k }),
            (Max, F64) => r.run(&Ext::<f64, true>(Default::default())),
            (Min, F64) => r.run(&Ext::<f64, false>(Default::default())),
            (Max, I64) => r.run(&Ext::<i64, true>(Default::default())),
            (Min, I64) => r.run(&Ext::<i64, false>(Default::default())),
            _ => Err(unsupported_dtype(op, dtype)),
        }
    }
}

/// One reduction call, validated up to the dtype.
struct Reduction<'a> {
    op: OpId,
    xd: &'a SrTensorDesc,
    od: &'a SrTensorDesc,
    mask: u64,
    want: &'a [usize],
}

impl Reduction<'_> {
    /// Views the tensors as `F::T` and runs the fold.
    ///
    /// # Safety
    /// As [`execute`].
    unsafe fn run<F: Fold>(&self, f: &F) -> Result<()> {
        let op = self.op;
        // SAFETY: per the caller.
        let x = unsafe { in_view::<F::T>(op, "input", self.xd) }?;
        // SAFETY: per the caller.
        let out = unsafe { out_view::<F::T>(op, "output", self.od, self.want) }?;
        if out.numel() == 0 {
            return Ok(());
        }
        let count: usize = (0..x.rank())
            .filter(|&k| self.mask >> k & 1 == 1)
            .map(|k| x.shape[k])
            .product();
        if count == 0 {
            if !f.empty_ok() {
                return Err(BackendError::invalid(format!(
                    "{op}: reduction over an empty set"
                )));
            }
            let v = f.finish(f.init(), 0);
            // SAFETY: the output was checked contiguous and nothing else
            // touches it during the call.
            unsafe { out.as_mut_slice() }
                .into_iter()
                .flatten()
                .for_each(|o| *o = v);
            return Ok(());
        }
        let out_strides = plan::contiguous_strides(&out.shape);
        let p = plan::Plan::new(&x.shape, &x.strides, &out_strides, self.mask);
        // SAFETY: the views are checked and in bounds; the plan covers
        // exactly their elements; outputs do not alias inputs (caller).
        unsafe { p.run(f, &x, &out, count) };
        Ok(())
    }
}

/// f32 sum or mean, accumulated in f64.
struct SumF32 {
    k: &'static ReduceKernels,
    mean: bool,
}

impl Fold for SumF32 {
    type T = f32;
    type Acc = f64;
    fn init(&self) -> f64 {
        0.0
    }
    fn one(&self, a: f64, v: f32) -> f64 {
        a + v as f64
    }
    fn merge(&self, a: f64, b: f64) -> f64 {
        a + b
    }
    fn finish(&self, a: f64, count: usize) -> f32 {
        if self.mean {
            (a / count as f64) as f32
        } else {
            a as f32
        }
    }
    fn row(&self, a: f64, x: &[f32]) -> f64 {
        a + self.k.row_sum(x)
    }
    fn acc_row(&self, acc: &mut [f64], x: &[f32]) {
        self.k.acc_sum(acc, x)
    }
    fn empty_ok(&self) -> bool {
        true
    }
}

/// f64 sum or mean.
struct SumF64 {
    mean: bool,
}

impl Fold for SumF64 {
    type T = f64;
    type Acc = f64;
    fn init(&self) -> f64 {
        0.0
    }
    fn one(&self, a: f64, v: f64) -> f64 {
        a + v
    }
    fn merge(&self, a: f64, b: f64) -> f64 {
        a + b
    }
    fn finish(&self, a: f64, count: usize) -> f64 {
        if self.mean {
            a / count as f64
        } else {
            a
        }
    }
    fn row(&self, a: f64, x: &[f64]) -> f64 {
        let mut acc = [0f64; 4];
        let mut chunks = x.chunks_exact(4);
        for c in &mut chunks {
            for k in 0..4 {
                acc[k] += c[k];
            }
        }
        a + (acc[0] + acc[1]) + (acc[2] + acc[3]) + chunks.remainder().iter().sum::<f64>()
    }
    fn empty_ok(&self) -> bool {
        true
    }
}

/// i64 sum, wrapping on overflow.
struct SumI64;

impl Fold for SumI64 {
    type T = i64;
    type Acc = i64;
    fn init(&self) -> i64 {
        0
    }
    fn one(&self, a: i64, v: i64) -> i64 {
        a.wrapping_add(v)
    }
    fn merge(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    fn finish(&self, a: i64, _count: usize) -> i64 {
        a
    }
    fn empty_ok(&self) -> bool {
        true
    }
}

/// The step of a NaN-propagating max (`MAX`) or min: `v` replaces `a`
/// when better or NaN (a NaN accumulator is never replaced).
fn pick<T: PartialOrd, const MAX: bool>(a: T, v: T) -> T {
    let better = if MAX { v > a } else { v < a };
    if better || is_nan(&v) {
        v
    } else {
        a
    }
}

/// True for a float NaN (never for integers).
pub(crate) fn is_nan<T: PartialOrd>(v: &T) -> bool {
    v.partial_cmp(v).is_none()
}

/// f32 max/min with the SIMD kernels.
struct ExtF32<const MAX: bool> {
    k: &'static ReduceKernels,
}

impl<const MAX: bool> Fold for ExtF32<MAX> {
    type T = f32;
    type Acc = f32;
    fn init(&self) -> f32 {
        if MAX {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        }
    }
    fn one(&self, a: f32, v: f32) -> f32 {
        pick::<f32, MAX>(a, v)
    }
    fn merge(&self, a: f32, b: f32) -> f32 {
        pick::<f32, MAX>(a, b)
    }
    fn finish(&self, a: f32, _count: usize) -> f32 {
        a
    }
    fn row(&self, a: f32, x: &[f32]) -> f32 {
        let r = if MAX {
            self.k.row_max(x)
        } else {
            self.k.row_min(x)
        };
        pick::<f32, MAX>(a, r)
    }
    fn acc_row(&self, acc: &mut [f32], x: &[f32]) {
        if MAX {
            self.k.acc_max(acc, x)
        } else {
            self.k.acc_min(acc, x)
        }
    }
    fn empty_ok(&self) -> bool {
        false
    }
}

/// Element types with a least and a greatest value (identities of max/min).
trait Bounded: Element {
    const LOWEST: Self;
    const HIGHEST: Self;
}

impl Bounded for f64 {
    const LOWEST: f64 = f64::NEG_INFINITY;
    const HIGHEST: f64 = f64::INFINITY;
}

impl Bounded for i64 {
    const LOWEST: i64 = i64::MIN;
    const HIGHEST: i64 = i64::MAX;
}

/// Portable max/min for f64 and i64.
struct Ext<T, const MAX: bool>(std::marker::PhantomData<T>);

impl<T: Bounded, const MAX: bool> Fold for Ext<T, MAX> {
    type T = T;
    type Acc = T;
    fn init(&self) -> T {
        if MAX {
            T::LOWEST
        } else {
            T::HIGHEST
        }
    }
    fn one(&self, a: T, v: T) -> T {
        pick::<T, MAX>(a, v)
    }
    fn merge(&self, a: T, b: T) -> T {
        pick::<T, MAX>(a, b)
    }
    fn finish(&self, a: T, _count: usize) -> T {
        a
    }
    fn empty_ok(&self) -> bool {
        false
    }
}

/// `argmax` along the single axis of the mask.
///
/// # Safety
/// As [`execute`].
unsafe fn argmax<T: Element>(r: &Reduction<'_>) -> Result<()> {
    let op = r.op;
    if r.mask.count_ones() != 1 {
        return Err(BackendError::invalid(format!(
            "{op}: needs exactly one axis in the mask, got {:#x}",
            r.mask
        )));
    }
    let axis = r.mask.trailing_zeros() as usize;
    // SAFETY: per the caller.
    let x = unsafe { in_view::<T>(op, "input", r.xd) }?;
    // SAFETY: per the caller.
    let out = unsafe { out_view::<i64>(op, "output", r.od, r.want) }?;
    if out.numel() == 0 {
        return Ok(());
    }
    let n = x.shape[axis];
    if n == 0 {
        return Err(BackendError::invalid(format!(
            "{op}: argmax over an empty axis"
        )));
    }
    let inner: usize = x.shape[axis + 1..].iter().product();
    // SAFETY: nothing writes the input during the call.
    let xs = unsafe { x.contiguous() };
    // SAFETY: the output is contiguous, distinct from the input, and only
    // this call touches it.
    let o = unsafe { out.as_mut_slice() }.expect("checked contiguous");
    let block = |b: usize, dst: &mut [i64]| {
        let src = &xs[b * n * inner..(b + 1) * n * inner];
        if inner == 1 {
            dst[0] = row_argmax(src);
            return;
        }
        let mut best: Vec<T> = src[..inner].to_vec();
        dst.fill(0);
        for j in 1..n {
            let row = &src[j * inner..(j + 1) * inner];
            for (c, &v) in row.iter().enumerate() {
                let a = best[c];
                if (v > a || is_nan(&v)) && !is_nan(&a) {
                    best[c] = v;
                    dst[c] = j as i64;
                }
            }
        }
    };
    if crate::threads::split(x.numel()) {
        use rayon::prelude::*;
        crate::threads::install(|| {
            o.par_chunks_mut(inner)
                .enumerate()
                .for_each(|(b, d)| block(b, d))
        });
    } else {
        o.chunks_mut(inner)
            .enumerate()
            .for_each(|(b, d)| block(b, d));
    }
    Ok(())
}

/// Index of the first maximum of a non-empty row (the first NaN wins).
fn row_argmax<T: Element>(x: &[T]) -> i64 {
    let (mut bi, mut best) = (0, x[0]);
    for (i, &v) in x.iter().enumerate().skip(1) {
        if is_nan(&best) {
            break;
        }
        if v > best || is_nan(&v) {
            (bi, best) = (i, v);
        }
    }
    bi as i64
}

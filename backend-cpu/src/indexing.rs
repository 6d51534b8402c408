//! Op family `indexing`: `index_select` and `index_add` along one axis.
//!
//! - `index_select(table, index i64)`: `out` has shape
//!   `table.shape[..axis] ++ index.shape ++ table.shape[axis + 1..]` and
//!   takes the slices of `table` named by `index`.
//! - `index_add(index i64, src)` into `out` (read and written):
//!   `src` has shape `out.shape[..axis] ++ index.shape ++ out.shape[axis + 1..]`
//!   and `out[.., index[i], ..] += src[.., i, ..]`, repeated indices
//!   accumulating in index order. The backward of `index_select`.
//!
//! Indices must lie in `[0, extent)`; every index is checked before
//! anything is written (negative indices are out of range, not wrapped).
//! Large calls run on the pool: `index_select` over output rows,
//! `index_add` over outer blocks (each owns a disjoint part of `out`).

use rayon::prelude::*;
use sunrise_backend_api::abi::SrOpSupport;
use sunrise_backend_api::{BackendError, DType, OpCall, OpId, Result};

use crate::element::Element;
use crate::reduce::{
    axis_param, dtype_of, expect_shape, in_view, out_view, pairs, unsupported_dtype,
};
use crate::strided::{check_arity, for_each_offset};
use crate::threads;

/// The (op, dtype) pairs this family implements (the table's or `src`'s
/// dtype; indices are always i64).
pub(crate) fn supported() -> Vec<SrOpSupport> {
    use DType::*;
    let mut v = pairs(&[OpId::IndexSelect], &[F32, F64, I64, U8]);
    v.extend(pairs(&[OpId::IndexAdd], &[F32, F64, I64]));
    v
}

/// Runs one op of this family.
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(crate) unsafe fn execute(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    check_arity(op.name(), call.inputs.len(), call.outputs.len(), 2, 1)?;
    use DType::*;
    // SAFETY: per the caller, for every arm.
    unsafe {
        if op == OpId::IndexSelect {
            match dtype_of(op, "table", &call.inputs[0])? {
                F32 => select::<f32>(call),
                F64 => select::<f64>(call),
                I64 => select::<i64>(call),
                U8 => select::<u8>(call),
            }
        } else {
            match dtype_of(op, "src", &call.inputs[1])? {
                F32 => add::<f32>(call),
                F64 => add::<f64>(call),
                I64 => add::<i64>(call),
                d => Err(unsupported_dtype(op, d)),
            }
        }
    }
}

/// The indices as `usize`, each checked against `extent`.
///
/// # Safety
/// As [`execute`].
unsafe fn indices(call: &OpCall<'_>, i: usize, extent: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    let op = call.op;
    // SAFETY: per the caller.
    let v = unsafe { in_view::<i64>(op, "index", &call.inputs[i]) }?;
    // SAFETY: inputs are not written during the call.
    let raw = unsafe { v.to_vec() };
    let mut out = Vec::with_capacity(raw.len());
    for (k, &ix) in raw.iter().enumerate() {
        match usize::try_from(ix) {
            Ok(u) if u < extent => out.push(u),
            _ => {
                return Err(BackendError::invalid(format!(
                    "{op}: index {ix} (at flat position {k}) is out of range for extent {extent}"
                )))
            }
        }
    }
    Ok((out, v.shape))
}

/// `base.shape[..axis] ++ mid ++ base.shape[axis + 1..]`.
fn spliced(base: &[usize], axis: usize, mid: &[usize]) -> Vec<usize> {
    let mut s = base[..axis].to_vec();
    s.extend_from_slice(mid);
    s.extend_from_slice(&base[axis + 1..]);
    s
}

/// The view's base pointer (a function, so closures capture the whole
/// `Sync` view rather than its raw-pointer field).
fn base<T>(v: &crate::strided::View<T>) -> *const T {
    v.ptr
}

/// Row-major without gaps (extent-1 dims may have any stride)?
fn is_dense(shape: &[usize], strides: &[usize]) -> bool {
    let mut expect = 1;
    for k in (0..shape.len()).rev() {
        if shape[k] != 1 && strides[k] != expect {
            return false;
        }
        expect *= shape[k];
    }
    true
}

/// `index_select`.
///
/// # Safety
/// As [`execute`].
unsafe fn select<T: Element>(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    // SAFETY: per the caller (every view below).
    let table = unsafe { in_view::<T>(op, "table", &call.inputs[0]) }?;
    let axis = axis_param(call, table.rank())?;
    let extent = table.shape[axis];
    // SAFETY: as above.
    let (idx, ishape) = unsafe { indices(call, 1, extent) }?;
    let want = spliced(&table.shape, axis, &ishape);
    if want.len() > sunrise_backend_api::abi::SR_MAX_RANK {
        return Err(BackendError::invalid(format!(
            "{op}: output rank {} is too large",
            want.len()
        )));
    }
    // SAFETY: as above.
    let out = unsafe { out_view::<T>(op, "output", &call.outputs[0], &want) }?;
    if out.numel() == 0 {
        return Ok(());
    }
    let inner: usize = table.shape[axis + 1..].iter().product();
    let (outer_s, axis_s) = (table.strides[..axis].to_vec(), table.strides[axis]);
    let outer_shape = table.shape[..axis].to_vec();
    // SAFETY: the output is contiguous, does not overlap the table, and is
    // only touched here.
    let o = unsafe { out.as_mut_slice() }.expect("checked contiguous");
    // A table row: the `inner` elements after `axis`.
    let (row_shape, row_strides) = (&table.shape[axis + 1..], &table.strides[axis + 1..]);
    let dense = is_dense(row_shape, row_strides);
    let n_idx = idx.len();
    let row = |r: usize, dst: &mut [T]| {
        let (ob, j) = (r / n_idx, r % n_idx);
        let mut off = idx[j] * axis_s;
        let mut rem = ob;
        for k in (0..outer_shape.len()).rev() {
            off += (rem % outer_shape[k]) * outer_s[k];
            rem /= outer_shape[k];
        }
        if dense {
            // SAFETY: `off` addresses a row start inside the table (indices
            // checked), the row is contiguous, and nothing writes the table.
            dst.copy_from_slice(unsafe {
                std::slice::from_raw_parts(base(&table).add(off), inner)
            });
        } else {
            let mut k = 0;
            for_each_offset(row_shape, row_strides, |e| {
                // SAFETY: as above; `e` is an in-bounds offset within the row.
                dst[k] = unsafe { *base(&table).add(off + e) };
                k += 1;
            });
        }
    };
    if threads::split(o.len()) {
        let min_len = (4096 / inner).max(1);
        threads::install(|| {
            o.par_chunks_mut(inner)
                .with_min_len(min_len)
                .enumerate()
                .for_each(|(r, d)| row(r, d))
        });
    } else {
        o.chunks_mut(inner).enumerate().for_each(|(r, d)| row(r, d));
    }
    Ok(())
}

/// Element types `index_add` accumulates (floats add, i64 wraps).
trait Accumulate: Element {
    fn acc(self, v: Self) -> Self;
}

impl Accumulate for f32 {
    fn acc(self, v: f32) -> f32 {
        self + v
    }
}

impl Accumulate for f64 {
    fn acc(self, v: f64) -> f64 {
        self + v
    }
}

impl Accumulate for i64 {
    fn acc(self, v: i64) -> i64 {
        self.wrapping_add(v)
    }
}

/// `index_add`.
///
/// # Safety
/// As [`execute`].
unsafe fn add<T: Accumulate>(call: &OpCall<'_>) -> Result<()> {
    let op = call.op;
    // SAFETY: per the caller (every view below).
    let out = unsafe { in_view::<T>(op, "output", &call.outputs[0]) }?;
    if !out.is_contiguous() {
        return Err(BackendError::invalid(format!(
            "{op}: output must be contiguous"
        )));
    }
    let axis = axis_param(call, out.rank())?;
    let extent = out.shape[axis];
    // SAFETY: as above.
    let (idx, ishape) = unsafe { indices(call, 0, extent) }?;
    // SAFETY: as above.
    let src = unsafe { in_view::<T>(op, "src", &call.inputs[1]) }?;
    expect_shape(op, "src", &src.shape, &spliced(&out.shape, axis, &ishape))?;
    let inner: usize = out.shape[axis + 1..].iter().product();
    let (n_idx, block) = (idx.len(), extent * inner);
    if out.numel() == 0 || inner == 0 || n_idx == 0 {
        return Ok(());
    }
    // SAFETY: `src` is an input, not written during the call.
    let s = unsafe { src.contiguous() };
    // SAFETY: the output is contiguous, distinct from the inputs (the op
    // reads and writes only it), and only touched here.
    let o = unsafe { out.as_mut_slice() }.expect("checked contiguous");
    let one = |b: usize, dst: &mut [T]| {
        let sb = &s[b * n_idx * inner..(b + 1) * n_idx * inner];
        for (j, &ix) in idx.iter().enumerate() {
            let (d, r) = (
                &mut dst[ix * inner..(ix + 1) * inner],
                &sb[j * inner..(j + 1) * inner],
            );
            for (a, &v) in d.iter_mut().zip(r) {
                *a = a.acc(v);
            }
        }
    };
    if threads::split(s.len()) && o.len() > block {
        threads::install(|| {
            o.par_chunks_mut(block)
                .enumerate()
                .for_each(|(b, d)| one(b, d))
        });
    } else {
        o.chunks_mut(block).enumerate().for_each(|(b, d)| one(b, d));
    }
    Ok(())
}

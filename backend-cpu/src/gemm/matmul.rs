//! The `matmul` op: checks, then one GEMM per batch index.

use rayon::prelude::*;
use sunrise_backend_api::ops::MatmulParams;
use sunrise_backend_api::{BackendError, OpCall, Result};

use super::{gemm, GemmCall, GemmScalar, MatMut, MatRef, Threads, PAR_MIN_WORK};
use crate::element::Element;
use crate::strided::{for_each_offset, View};
use crate::threads;

/// Runs `matmul` on dtype `T` (arity and params already checked).
///
/// # Safety
/// As [`sunrise_backend_api::Backend::execute`].
pub(super) unsafe fn matmul<T: GemmScalar>(call: &OpCall<'_>, p: &MatmulParams) -> Result<()> {
    // SAFETY: the descriptors name live buffers, per the caller.
    let (a, b, c) = unsafe {
        (
            View::<T>::new(&call.inputs[0])?,
            View::<T>::new(&call.inputs[1])?,
            View::<T>::new(&call.outputs[0])?,
        )
    };
    let (m, k, n) = check_shapes(&a, &b, &c)?;
    let batch = Batch::new(&a, &b, &c, (m, k, n), p);
    if m == 0 || n == 0 || batch.offsets.is_empty() {
        return Ok(());
    }
    let count = batch.offsets.len();
    let work = m.saturating_mul(n).saturating_mul(k.max(1));
    let batch = &batch;
    // Views are checked in bounds; C is contiguous, so each batch index owns
    // its m x n block; outputs do not alias inputs.
    if count > 1
        && work < PAR_MIN_WORK
        && work.saturating_mul(count) >= PAR_MIN_WORK
        && threads::num_threads() > 1
    {
        threads::install(|| {
            (0..count)
                .into_par_iter()
                // SAFETY: each index runs once, on one thread.
                .for_each(|i| unsafe { batch.run(i, Threads::Single) })
        });
    } else {
        // SAFETY: one index at a time.
        (0..count).for_each(|i| unsafe { batch.run(i, Threads::Auto) });
    }
    Ok(())
}

/// The GEMM of batch index 0 and the element offsets of every batch index.
struct Batch<T> {
    /// `[a, b, c]` offsets per batch index.
    offsets: Vec<[usize; 3]>,
    /// The call for offsets `[0, 0, 0]`.
    proto: GemmCall<T>,
}

impl<T: GemmScalar> Batch<T> {
    /// The GEMM at batch index 0 and the offsets of every batch index.
    fn new(
        a: &View<T>,
        b: &View<T>,
        c: &View<T>,
        (m, k, n): (usize, usize, usize),
        p: &MatmulParams,
    ) -> Self {
        let r = c.rank();
        let batch_shape = &c.shape[..r - 2];
        let (mut oa, mut ob, mut oc) = (Vec::new(), Vec::new(), Vec::new());
        for_each_offset(batch_shape, &a.strides[..r - 2], |o| oa.push(o));
        for_each_offset(batch_shape, &b.strides[..r - 2], |o| ob.push(o));
        for_each_offset(batch_shape, &c.strides[..r - 2], |o| oc.push(o));
        let mat = |ptr: *const T, st: &[usize]| MatRef {
            ptr,
            rs: st[r - 2],
            cs: st[r - 1],
        };
        Batch {
            offsets: oa
                .into_iter()
                .zip(ob)
                .zip(oc)
                .map(|((x, y), z)| [x, y, z])
                .collect(),
            proto: GemmCall {
                m,
                n,
                k,
                a: mat(a.ptr, &a.strides),
                b: mat(b.ptr, &b.strides),
                c: MatMut { ptr: c.ptr, rs: n },
                alpha: T::from_f64(p.alpha),
                beta: T::from_f64(p.beta),
            },
        }
    }

    /// Runs batch index `i`.
    ///
    /// # Safety
    /// The views behind `proto` are live, and no other thread runs index `i`.
    unsafe fn run(&self, i: usize, threads: Threads) {
        let [oa, ob, oc] = self.offsets[i];
        let mut g = self.proto;
        // SAFETY: offsets of in-bounds batch indices stay inside the views.
        unsafe {
            g.a.ptr = g.a.ptr.add(oa);
            g.b.ptr = g.b.ptr.add(ob);
            g.c.ptr = g.c.ptr.add(oc);
        }
        // SAFETY: per the caller; blocks of distinct indices are disjoint.
        unsafe { gemm(&g, threads) };
    }
}

/// Checks ranks, shapes and layout; returns `(m, k, n)`.
fn check_shapes<T: Element>(
    a: &View<T>,
    b: &View<T>,
    c: &View<T>,
) -> Result<(usize, usize, usize)> {
    let r = c.rank();
    if r < 2 || a.rank() != r || b.rank() != r {
        return Err(BackendError::invalid(format!(
            "matmul: a, b and c need the same rank >= 2, got {:?}, {:?} and {:?}",
            a.shape, b.shape, c.shape
        )));
    }
    let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
    if b.shape[r - 2] != k || c.shape[r - 2] != m || c.shape[r - 1] != n {
        return Err(BackendError::invalid(format!(
            "matmul: shapes {:?} x {:?} -> {:?} do not chain as [.., M, K] x [.., K, N] -> [.., M, N]",
            a.shape, b.shape, c.shape
        )));
    }
    if a.shape[..r - 2] != c.shape[..r - 2] || b.shape[..r - 2] != c.shape[..r - 2] {
        return Err(BackendError::invalid(format!(
            "matmul: batch dims of {:?} and {:?} must equal the output's {:?} (broadcast with stride 0)",
            a.shape, b.shape, c.shape
        )));
    }
    if !c.is_contiguous() {
        return Err(BackendError::invalid(
            "matmul: the output must be contiguous row-major",
        ));
    }
    Ok((m, k, n))
}

//! The reduction engine: a [`Fold`] (what to compute) driven over a
//! [`Plan`] (how to walk the input). Dtype-generic; the f32 folds call the
//! SIMD row kernels.

use std::cmp::Reverse;

use rayon::prelude::*;

use crate::element::Element;
use crate::strided::View;
use crate::threads;

/// Elements per parallel work item.
const SEG: usize = 1 << 14;
/// Columns per accumulator row (f64 accumulators stay in L1).
const COLS: usize = 1024;

/// A reduction: an accumulator, how one element, a contiguous row or an
/// accumulator row folds in, and how accumulators merge and finish.
pub(crate) trait Fold: Sync {
    /// Element type.
    type T: Element;
    /// Accumulator type.
    type Acc: Copy + Send + Sync;
    /// The identity.
    fn init(&self) -> Self::Acc;
    /// Folds one element.
    fn one(&self, a: Self::Acc, v: Self::T) -> Self::Acc;
    /// Merges two partial results (left then right).
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    /// The output for an accumulator over `count` elements.
    fn finish(&self, a: Self::Acc, count: usize) -> Self::T;
    /// Whether an empty reduction is defined (else `InvalidArgument`).
    fn empty_ok(&self) -> bool;
    /// Folds a contiguous row.
    fn row(&self, a: Self::Acc, x: &[Self::T]) -> Self::Acc {
        x.iter().fold(a, |a, &v| self.one(a, v))
    }
    /// Folds `x[i]` into `acc[i]`.
    fn acc_row(&self, acc: &mut [Self::Acc], x: &[Self::T]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a = self.one(*a, v);
        }
    }
}

/// Folds `n` elements at `p` spaced `s` apart.
///
/// # Safety
/// The `n` elements are readable and not written meanwhile.
unsafe fn row_at<F: Fold>(f: &F, a: F::Acc, p: *const F::T, n: usize, s: usize) -> F::Acc {
    if s == 1 {
        // SAFETY: `n` contiguous readable elements (caller).
        f.row(a, unsafe { std::slice::from_raw_parts(p, n) })
    } else {
        // SAFETY: element `i < n` is readable (caller).
        (0..n).fold(a, |a, i| f.one(a, unsafe { *p.add(i * s) }))
    }
}

/// Folds the `acc.len()` elements at `p` spaced `s` apart into `acc`.
///
/// # Safety
/// As [`row_at`].
unsafe fn acc_row_at<F: Fold>(f: &F, acc: &mut [F::Acc], p: *const F::T, s: usize) {
    if s == 1 {
        // SAFETY: `acc.len()` contiguous readable elements (caller).
        f.acc_row(acc, unsafe { std::slice::from_raw_parts(p, acc.len()) })
    } else {
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: element `i < acc.len()` is readable (caller).
            *a = f.one(*a, unsafe { *p.add(i * s) });
        }
    }
}

/// One dim of a plan: extent, input stride, output stride (0 if reduced).
#[derive(Debug, Clone, Copy)]
struct Dim {
    n: usize,
    xs: usize,
    os: usize,
}

/// Calls `f(input offset, output offset)` for the flat indices
/// `start..end` of `dims` (row-major), stepping incrementally.
fn for_range(dims: &[Dim], start: usize, end: usize, mut f: impl FnMut(usize, usize)) {
    let rank = dims.len();
    let mut idx = [0usize; 64];
    let (mut xo, mut oo, mut rem) = (0, 0, start);
    for k in (0..rank).rev() {
        idx[k] = rem % dims[k].n;
        rem /= dims[k].n;
        xo += idx[k] * dims[k].xs;
        oo += idx[k] * dims[k].os;
    }
    for _ in start..end {
        f(xo, oo);
        for k in (0..rank).rev() {
            idx[k] += 1;
            xo += dims[k].xs;
            oo += dims[k].os;
            if idx[k] < dims[k].n {
                break;
            }
            xo -= dims[k].xs * dims[k].n;
            oo -= dims[k].os * dims[k].n;
            idx[k] = 0;
        }
    }
}

/// The input offset of flat index `i` of `dims`.
fn offset_of(dims: &[Dim], mut i: usize) -> usize {
    let mut off = 0;
    for d in dims.iter().rev() {
        off += (i % d.n) * d.xs;
        i /= d.n;
    }
    off
}

fn numel(dims: &[Dim]) -> usize {
    dims.iter().map(|d| d.n).product()
}

/// Row-major strides of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// How to walk one reduction: the outer kept dims, the outer reduced dims,
/// and the innermost dim (smallest input stride), reduced or kept.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    kept: Vec<Dim>,
    red: Vec<Dim>,
    inner: Dim,
    inner_reduced: bool,
}

impl Plan {
    /// Plans reducing the dims in `mask` of a view with `shape`/`xs`
    /// into an output with strides `os` (extent 1 on reduced dims).
    pub(crate) fn new(shape: &[usize], xs: &[usize], os: &[usize], mask: u64) -> Plan {
        let mut dims: Vec<(Dim, bool)> = (0..shape.len())
            .filter(|&k| shape[k] != 1)
            .map(|k| {
                let red = mask >> k & 1 == 1;
                let os = if red { 0 } else { os[k] };
                (
                    Dim {
                        n: shape[k],
                        xs: xs[k],
                        os,
                    },
                    red,
                )
            })
            .collect();
        // Broadcast (stride-0) dims outermost, then by falling stride.
        dims.sort_by_key(|(d, _)| Reverse(if d.xs == 0 { usize::MAX } else { d.xs }));
        let mut merged: Vec<(Dim, bool)> = Vec::with_capacity(dims.len());
        for (d, red) in dims {
            if let Some((last, lred)) = merged.last_mut() {
                if *lred == red && last.xs == d.xs * d.n && last.os == d.os * d.n {
                    *last = Dim {
                        n: last.n * d.n,
                        ..d
                    };
                    continue;
                }
            }
            merged.push((d, red));
        }
        let (inner, inner_reduced) = merged.pop().unwrap_or((Dim { n: 1, xs: 0, os: 0 }, false));
        let kept = merged.iter().filter(|m| !m.1).map(|m| m.0).collect();
        let red = merged.iter().filter(|m| m.1).map(|m| m.0).collect();
        Plan {
            kept,
            red,
            inner,
            inner_reduced,
        }
    }

    /// Runs `f` from `x` into `out`; `count` reduced elements per output.
    ///
    /// # Safety
    /// The plan was made from `x`'s and `out`'s shapes and strides; both
    /// views are in bounds; `out` does not overlap `x` and nothing else
    /// touches either during the call.
    pub(crate) unsafe fn run<F: Fold>(
        &self,
        f: &F,
        x: &View<F::T>,
        out: &View<F::T>,
        count: usize,
    ) {
        let par = threads::split(x.numel());
        // SAFETY: forwarded from the caller.
        unsafe {
            if self.inner_reduced {
                self.rows(f, x, out, count, par)
            } else {
                self.cols(f, x, out, count, par)
            }
        }
    }

    /// Innermost dim reduced: each output folds whole rows.
    ///
    /// # Safety
    /// As [`Plan::run`].
    unsafe fn rows<F: Fold>(
        &self,
        f: &F,
        x: &View<F::T>,
        out: &View<F::T>,
        count: usize,
        par: bool,
    ) {
        let (n_out, n_r, l, s) = (
            numel(&self.kept),
            numel(&self.red),
            self.inner.n,
            self.inner.xs,
        );
        let one = |xo: usize, oo: usize| {
            let mut acc = f.init();
            for_range(&self.red, 0, n_r, |xr, _| {
                // SAFETY: the row lies inside `x` (the plan covers its shape).
                acc = unsafe { row_at(f, acc, x.ptr.add(xo + xr), l, s) };
            });
            // SAFETY: each output offset is written by exactly one caller
            // of `one`; it lies inside `out`.
            unsafe { *out.ptr.add(oo) = f.finish(acc, count) };
        };
        if !par {
            return for_range(&self.kept, 0, n_out, &one);
        }
        if n_out >= 4 * threads::num_threads() {
            let chunk = (SEG / (n_r * l)).max(1);
            let tasks = n_out.div_ceil(chunk);
            return threads::install(|| {
                (0..tasks).into_par_iter().for_each(|t| {
                    for_range(&self.kept, t * chunk, ((t + 1) * chunk).min(n_out), &one)
                })
            });
        }
        // Few outputs: split each output's rows (or row segments) instead.
        for_range(&self.kept, 0, n_out, |xo, oo| {
            let acc = self.split_rows(f, x, xo);
            // SAFETY: as in `one`.
            unsafe { *out.ptr.add(oo) = f.finish(acc, count) };
        });
    }

    /// One output's fold, split into fixed pieces run on the pool and
    /// merged in order.
    fn split_rows<F: Fold>(&self, f: &F, x: &View<F::T>, xo: usize) -> F::Acc {
        let (n_r, l, s) = (numel(&self.red), self.inner.n, self.inner.xs);
        let segs = l.div_ceil(SEG);
        let per_task = if segs == 1 { (SEG / l).max(1) } else { 1 };
        let items = n_r * segs;
        let tasks = items.div_ceil(per_task);
        let piece = |t: usize| {
            let mut acc = f.init();
            if segs == 1 {
                for_range(
                    &self.red,
                    t * per_task,
                    ((t + 1) * per_task).min(n_r),
                    |xr, _| {
                        // SAFETY: the row lies inside `x`.
                        acc = unsafe { row_at(f, acc, x.ptr.add(xo + xr), l, s) };
                    },
                );
            } else {
                let (r, c0) = (t / segs, (t % segs) * SEG);
                let p = xo + offset_of(&self.red, r) + c0 * s;
                // SAFETY: columns `c0..c0 + len` of the row lie inside `x`.
                acc = unsafe { row_at(f, acc, x.ptr.add(p), SEG.min(l - c0), s) };
            }
            acc
        };
        let parts: Vec<F::Acc> =
            threads::install(|| (0..tasks).into_par_iter().map(piece).collect());
        parts.into_iter().fold(f.init(), |a, b| f.merge(a, b))
    }

    /// Innermost dim kept: input rows accumulate into accumulator rows.
    ///
    /// # Safety
    /// As [`Plan::run`].
    unsafe fn cols<F: Fold>(
        &self,
        f: &F,
        x: &View<F::T>,
        out: &View<F::T>,
        count: usize,
        par: bool,
    ) {
        let (n_ko, l) = (numel(&self.kept), self.inner.n);
        let nb = l.div_ceil(COLS);
        let items = n_ko * nb;
        let outer_par = par && items >= 2 * threads::num_threads();
        let block = |t: usize| {
            let (ko, c0) = (t / nb, (t % nb) * COLS);
            let mut acc = vec![f.init(); COLS.min(l - c0)];
            let mut oo = 0;
            for_range(&self.kept, ko, ko + 1, |xo, o| {
                oo = o;
                self.accumulate(f, x, xo + c0 * self.inner.xs, &mut acc, par && !outer_par);
            });
            for (j, &a) in acc.iter().enumerate() {
                // SAFETY: each (outer, column) output is written by exactly
                // one block; it lies inside `out`.
                unsafe { *out.ptr.add(oo + (c0 + j) * self.inner.os) = f.finish(a, count) };
            }
        };
        if outer_par {
            threads::install(|| (0..items).into_par_iter().for_each(block));
        } else {
            (0..items).for_each(block);
        }
    }

    /// Folds every reduced row starting at input offset `base` into `acc`;
    /// on the pool in fixed pieces when `par` and there are many rows.
    fn accumulate<F: Fold>(
        &self,
        f: &F,
        x: &View<F::T>,
        base: usize,
        acc: &mut [F::Acc],
        par: bool,
    ) {
        let (n_r, s) = (numel(&self.red), self.inner.xs);
        let per_task = (SEG / acc.len()).max(1);
        if !par || n_r <= per_task {
            for_range(&self.red, 0, n_r, |xr, _| {
                // SAFETY: the row segment lies inside `x`.
                unsafe { acc_row_at(f, acc, x.ptr.add(base + xr), s) };
            });
            return;
        }
        let w = acc.len();
        let tasks = n_r.div_ceil(per_task);
        let parts: Vec<Vec<F::Acc>> = threads::install(|| {
            (0..tasks)
                .into_par_iter()
                .map(|t| {
                    let mut part = vec![f.init(); w];
                    for_range(
                        &self.red,
                        t * per_task,
                        ((t + 1) * per_task).min(n_r),
                        |xr, _| {
                            // SAFETY: the row segment lies inside `x`.
                            unsafe { acc_row_at(f, &mut part, x.ptr.add(base + xr), s) };
                        },
                    );
                    part
                })
                .collect()
        });
        for part in parts {
            for (a, b) in acc.iter_mut().zip(part) {
                *a = f.merge(*a, b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_coalesces_and_orders_by_stride() {
        // [2, 3, 4] contiguous, reduce axis 1: kept 2 (outer), reduced 3, kept 4 inner.
        let p = Plan::new(&[2, 3, 4], &[12, 4, 1], &[4, 4, 1], 0b010);
        assert!(!p.inner_reduced);
        assert_eq!((p.inner.n, p.kept.len(), p.red.len()), (4, 1, 1));
        // Transposed [4, 3] view of a [3, 4] buffer, reduce axis 1 (stride 4):
        // the reduced dim goes outer, the kept stride-1 dim inner.
        let p = Plan::new(&[4, 3], &[1, 4], &[1, 1], 0b10);
        assert!(!p.inner_reduced && p.inner.n == 4 && p.inner.xs == 1);
        // All axes of a contiguous tensor coalesce into one row.
        let p = Plan::new(&[5, 6, 7], &[42, 7, 1], &[1, 1, 1], 0b111);
        assert!(p.inner_reduced && p.inner.n == 210 && p.red.is_empty() && p.kept.is_empty());
    }

    #[test]
    fn for_range_steps_like_decoding() {
        let dims = [
            Dim {
                n: 3,
                xs: 10,
                os: 1,
            },
            Dim { n: 4, xs: 1, os: 3 },
        ];
        let mut got = vec![];
        for_range(&dims, 2, 9, |x, o| got.push((x, o)));
        let want: Vec<(usize, usize)> = (2..9)
            .map(|i| ((i / 4) * 10 + i % 4, (i / 4) + (i % 4) * 3))
            .collect();
        assert_eq!(got, want);
        assert_eq!(offset_of(&dims, 7), 13);
    }
}

//! Iteration plans: the operands' dims coalesced, walked as runs of the
//! innermost dim, split into chunks over the thread pool when large.

use rayon::prelude::*;

use crate::threads;

/// How `K` same-shaped operands (operand 0 is the output) are walked.
#[derive(Debug, Clone)]
pub(crate) struct Plan<const K: usize> {
    /// Extents after coalescing, outermost first; never empty (a scalar or
    /// an all-ones shape becomes `[1]`).
    shape: Vec<usize>,
    /// Per dim, the stride of each operand in elements.
    strides: Vec<[usize; K]>,
    /// Number of elements.
    numel: usize,
}

impl<const K: usize> Plan<K> {
    /// Plans `shape` for operands with the given strides (each as long as
    /// `shape`). Size-1 dims are dropped; dim `k` merges into the dim before
    /// it when, for every operand, `stride[k-1] == stride[k] * shape[k]`.
    pub(crate) fn new(shape: &[usize], strides: [&[usize]; K]) -> Self {
        let numel = shape.iter().product();
        let mut dims: Vec<(usize, [usize; K])> = Vec::with_capacity(shape.len().max(1));
        for (k, &n) in shape.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let s: [usize; K] = std::array::from_fn(|j| strides[j][k]);
            if let Some((pn, ps)) = dims.last_mut() {
                let merges = (0..K).all(|j| s[j].checked_mul(n) == Some(ps[j]));
                if merges {
                    *pn *= n;
                    *ps = s;
                    continue;
                }
            }
            dims.push((n, s));
        }
        if dims.is_empty() {
            dims.push((1, [1; K]));
        }
        Plan {
            shape: dims.iter().map(|d| d.0).collect(),
            strides: dims.iter().map(|d| d.1).collect(),
            numel,
        }
    }

    /// Number of elements.
    #[cfg(test)]
    pub(crate) fn numel(&self) -> usize {
        self.numel
    }

    /// Rank after coalescing (at least 1).
    #[cfg(test)]
    pub(crate) fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Strides of the innermost dim, per operand.
    pub(crate) fn inner_strides(&self) -> [usize; K] {
        self.strides[self.strides.len() - 1]
    }

    /// Calls `f(offsets, len)` for each run of the innermost dim that
    /// covers the row-major element range `lo..hi`, where `offsets` are the
    /// run's first element offsets (one per operand) and `len` its length.
    pub(crate) fn for_runs(&self, lo: usize, hi: usize, mut f: impl FnMut([usize; K], usize)) {
        let r = self.shape.len();
        let n = self.shape[r - 1];
        if lo >= hi || n == 0 {
            return;
        }
        let inner = self.strides[r - 1];
        let mut idx = vec![0usize; r - 1];
        let mut base = [0usize; K];
        let mut rem = lo / n;
        for d in (0..r - 1).rev() {
            idx[d] = rem % self.shape[d];
            rem /= self.shape[d];
            for (b, s) in base.iter_mut().zip(self.strides[d]) {
                *b += idx[d] * s;
            }
        }
        let mut col = lo % n;
        let mut pos = lo;
        while pos < hi {
            let len = (n - col).min(hi - pos);
            f(std::array::from_fn(|j| base[j] + col * inner[j]), len);
            pos += len;
            col = 0;
            for d in (0..r - 1).rev() {
                idx[d] += 1;
                for (b, s) in base.iter_mut().zip(self.strides[d]) {
                    *b += s;
                }
                if idx[d] < self.shape[d] {
                    break;
                }
                for (b, s) in base.iter_mut().zip(self.strides[d]) {
                    *b -= s * self.shape[d];
                }
                idx[d] = 0;
            }
        }
    }

    /// Runs `body(scratch, offsets, len)` over every run, on the thread pool
    /// in chunks when the plan is large. Each chunk makes its own scratch
    /// with `init`.
    pub(crate) fn run<S>(
        &self,
        init: impl Fn() -> S + Sync,
        body: impl Fn(&mut S, [usize; K], usize) + Sync,
    ) {
        let total = self.numel;
        if total == 0 {
            return;
        }
        let chunks = chunk_count(total);
        if chunks <= 1 {
            let mut s = init();
            self.for_runs(0, total, |o, l| body(&mut s, o, l));
            return;
        }
        // Chunk edges on multiples of 64 elements keep threads off each
        // other's cache lines for contiguous outputs.
        let size = total.div_ceil(chunks).next_multiple_of(64);
        threads::install(|| {
            (0..total.div_ceil(size)).into_par_iter().for_each(|c| {
                let lo = c * size;
                let hi = (lo + size).min(total);
                let mut s = init();
                self.for_runs(lo, hi, |o, l| body(&mut s, o, l));
            })
        });
    }
}

/// How many chunks an op of `total` elements is split into (1: stay on
/// the calling thread).
fn chunk_count(total: usize) -> usize {
    if total < threads::PAR_THRESHOLD {
        return 1;
    }
    let t = threads::num_threads();
    if t <= 1 {
        return 1;
    }
    (total / (threads::PAR_THRESHOLD / 4)).clamp(t, 4 * t)
}

/// Checks that no two elements of a strided view share an address: sorted
/// by stride, each dim (of extent > 1) must step past everything the
/// smaller dims reach. Returns why not, otherwise.
pub(crate) fn check_no_overlap(shape: &[usize], strides: &[usize]) -> Result<(), String> {
    if shape.contains(&0) {
        return Ok(());
    }
    let mut dims: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|(&n, _)| n > 1)
        .map(|(&n, &s)| (s, n))
        .collect();
    dims.sort_unstable();
    let mut reach = 0usize;
    for (s, n) in dims {
        if s <= reach {
            return Err(format!(
                "view (shape {shape:?}, strides {strides:?}) overlaps itself"
            ));
        }
        reach = reach.saturating_add(s.saturating_mul(n - 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs<const K: usize>(p: &Plan<K>, lo: usize, hi: usize) -> Vec<([usize; K], usize)> {
        let mut v = vec![];
        p.for_runs(lo, hi, |o, l| v.push((o, l)));
        v
    }

    #[test]
    fn contiguous_operands_coalesce_to_one_run() {
        let p = Plan::new(&[2, 3, 4], [&[12, 4, 1], &[12, 4, 1]]);
        assert_eq!(p.rank(), 1);
        assert_eq!(runs(&p, 0, 24), vec![([0, 0], 24)]);
        assert_eq!(runs(&p, 5, 9), vec![([5, 5], 4)]);
    }

    #[test]
    fn broadcast_and_transposed_dims_stay_apart() {
        // out [2, 3] contiguous, a broadcast along rows, b transposed.
        let p = Plan::new(&[2, 3], [&[3, 1], &[0, 1], &[1, 2]]);
        assert_eq!(p.rank(), 2);
        assert_eq!(p.inner_strides(), [1, 1, 2]);
        assert_eq!(runs(&p, 0, 6), vec![([0, 0, 0], 3), ([3, 0, 1], 3)]);
        // A range starting and ending mid-row.
        assert_eq!(runs(&p, 2, 5), vec![([2, 2, 4], 1), ([3, 0, 1], 2)]);
    }

    #[test]
    fn unit_dims_and_scalars() {
        let p = Plan::new(&[1, 4, 1], [&[99, 1, 7], &[5, 0, 3]]);
        assert_eq!(p.rank(), 1);
        assert_eq!(p.inner_strides(), [1, 0]);
        let s = Plan::<2>::new(&[], [&[], &[]]);
        assert_eq!((s.numel(), runs(&s, 0, 1)), (1, vec![([0, 0], 1)]));
        let e = Plan::new(&[3, 0], [&[0, 1], &[0, 1]]);
        assert_eq!(e.numel(), 0);
        assert!(runs(&e, 0, 0).is_empty());
    }

    #[test]
    fn runs_cover_every_offset_once() {
        let shape = [3, 4, 5];
        let strides: [&[usize]; 2] = [&[20, 5, 1], &[1, 15, 3]];
        let p = Plan::new(&shape, strides);
        let mut expect = vec![];
        crate::strided::for_each_offset(&shape, strides[1], |o| expect.push(o));
        for (lo, hi) in [(0, 60), (7, 43), (59, 60)] {
            let mut got = vec![];
            p.for_runs(lo, hi, |o, l| {
                got.extend((0..l).map(|i| (o[0] + i, o[1] + 3 * i)))
            });
            let want: Vec<_> = (lo..hi).map(|i| (i, expect[i])).collect();
            assert_eq!(got, want, "range {lo}..{hi}");
        }
    }

    #[test]
    fn overlap_check() {
        assert!(check_no_overlap(&[2, 3], &[3, 1]).is_ok());
        assert!(check_no_overlap(&[2, 3], &[1, 2]).is_ok());
        assert!(check_no_overlap(&[2, 3], &[10, 2]).is_ok());
        assert!(check_no_overlap(&[4, 1], &[1, 0]).is_ok());
        assert!(check_no_overlap(&[2, 3], &[0, 1]).is_err());
        assert!(check_no_overlap(&[2, 3], &[2, 1]).is_err());
        assert!(check_no_overlap(&[0, 3], &[0, 0]).is_ok());
    }
}

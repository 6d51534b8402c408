//! Running flat kernels over strided runs: each run of the innermost dim
//! goes to the kernel directly when every operand is contiguous or a
//! broadcast scalar along it, else through gather/scatter blocks.

use crate::element::Element;
use crate::strided::View;

use super::plan::Plan;

/// Elements per gather/scatter block.
pub(crate) const BLOCK: usize = 256;

/// A kernel input: a contiguous run, or one value repeated (stride 0).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Src<'a, T> {
    /// Contiguous elements, as many as the output.
    Slice(&'a [T]),
    /// One value for every output element.
    Splat(T),
}

impl<T: Copy> Src<'_, T> {
    /// Element `i`.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> T {
        match self {
            Src::Slice(s) => s[i],
            Src::Splat(v) => *v,
        }
    }
}

/// A raw element pointer that may cross threads: every chunk of a plan
/// touches disjoint output elements.
#[derive(Debug)]
pub(crate) struct Ptr<T>(*mut T);

impl<T> Clone for Ptr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ptr<T> {}

// SAFETY: the pointer is only dereferenced inside `row*`, whose callers
// give each thread a disjoint set of output elements; inputs are only read.
unsafe impl<T: Send> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Ptr<T> {}

impl<T> Ptr<T> {
    /// The pointer advanced by `off` elements.
    ///
    /// # Safety
    /// The result stays inside the allocation the pointer came from.
    #[inline(always)]
    unsafe fn at(self, off: usize) -> *mut T {
        // SAFETY: per the caller.
        unsafe { self.0.add(off) }
    }
}

/// Scratch for one gather/scatter block of one operand.
#[derive(Debug)]
pub(crate) struct Block<T>([T; BLOCK]);

impl<T: Element> Block<T> {
    fn new() -> Self {
        Block([T::default(); BLOCK])
    }
}

/// The run of `n` elements at `p` with stride `s`, as a kernel input:
/// borrowed when contiguous, gathered into `buf` when strided.
///
/// # Safety
/// `p.add(i * s)` is readable for `i < n`, and not written meanwhile; when
/// `s > 1`, `n <= BLOCK`.
#[inline(always)]
unsafe fn source<'a, T: Copy>(
    p: *const T,
    s: usize,
    n: usize,
    buf: &'a mut Block<T>,
) -> Src<'a, T> {
    match s {
        // SAFETY: element 0 is readable (n >= 1 whenever called).
        0 => Src::Splat(unsafe { *p }),
        // SAFETY: n contiguous readable elements.
        1 => Src::Slice(unsafe { std::slice::from_raw_parts(p, n) }),
        _ => {
            let b = &mut buf.0[..n];
            for (i, v) in b.iter_mut().enumerate() {
                // SAFETY: i < n, readable per the caller.
                *v = unsafe { *p.add(i * s) };
            }
            Src::Slice(b)
        }
    }
}

/// Runs `k` on the run of `n` output elements at `o` (stride `so`): hands
/// it the output directly when contiguous, else a block scattered after.
///
/// # Safety
/// `o.add(i * so)` is writable for `i < n` and nothing else touches those
/// elements meanwhile; when `so != 1`, `n <= BLOCK`.
#[inline(always)]
unsafe fn sink<O: Copy>(
    o: *mut O,
    so: usize,
    n: usize,
    buf: &mut Block<O>,
    k: impl FnOnce(&mut [O]),
) {
    if so == 1 {
        // SAFETY: n contiguous writable elements, exclusive per the caller.
        k(unsafe { std::slice::from_raw_parts_mut(o, n) });
    } else {
        let b = &mut buf.0[..n];
        k(b);
        for (i, v) in b.iter().enumerate() {
            // SAFETY: i < n, writable per the caller.
            unsafe { *o.add(i * so) = *v };
        }
    }
}

/// Block length for a run: the whole run when every stride is 0 or 1 (and
/// the output's is 1), else [`BLOCK`].
#[inline(always)]
fn step(so: usize, ins: &[usize], len: usize) -> usize {
    if so == 1 && ins.iter().all(|&s| s <= 1) {
        len
    } else {
        BLOCK
    }
}

/// Walks `plan` and calls `run(scratch, offsets, i, n)` for each block of
/// each run: `offsets` are the run's, `i` is the block's first element
/// within the run and `n` its length.
#[inline(always)]
fn blocks<const K: usize, S>(
    plan: &Plan<K>,
    init: impl Fn() -> S + Sync,
    run: impl Fn(&mut S, [usize; K], usize, usize) + Sync,
) {
    let strides = plan.inner_strides();
    plan.run(init, |scratch, offs, len| {
        let step = step(strides[0], &strides[1..], len);
        let mut i = 0;
        while i < len {
            let n = step.min(len - i);
            run(scratch, offs, i, n);
            i += n;
        }
    });
}

/// Writes `v` to every element of `out`.
///
/// # Safety
/// `out` is a checked view of a live buffer for this call that does not
/// overlap itself.
pub(crate) unsafe fn launch0<O: Element>(out: &View<O>, v: O) {
    let plan = Plan::new(&out.shape, [&out.strides]);
    let [so] = plan.inner_strides();
    let po = Ptr(out.ptr);
    blocks(&plan, Block::<O>::new, |bo, offs, i, n| {
        // SAFETY: the plan keeps offsets inside the checked view and gives
        // each output element to one chunk; n <= BLOCK unless so == 1.
        unsafe { sink(po.at(offs[0] + i * so), so, n, bo, |o| o.fill(v)) }
    });
}

/// Runs the flat kernel `k(a, out)` over every element.
///
/// # Safety
/// The views are checked views of live buffers for this call, `a` of the
/// output's shape; the output overlaps neither itself nor `a`.
pub(crate) unsafe fn launch1<A: Element, O: Element>(
    out: &View<O>,
    a: &View<A>,
    k: impl Fn(Src<'_, A>, &mut [O]) + Sync,
) {
    let plan = Plan::new(&out.shape, [&out.strides, &a.strides]);
    let [so, sa] = plan.inner_strides();
    let (po, pa) = (Ptr(out.ptr), Ptr(a.ptr));
    let init = || (Block::<O>::new(), Block::<A>::new());
    blocks(&plan, init, |(bo, ba), offs, i, n| {
        // SAFETY: the plan keeps offsets inside each checked view and gives
        // each output element to one chunk; n <= BLOCK for strided operands.
        unsafe {
            let a = source(pa.at(offs[1] + i * sa), sa, n, ba);
            sink(po.at(offs[0] + i * so), so, n, bo, |o| k(a, o));
        }
    });
}

/// Runs the flat kernel `k(a, b, out)` over every element.
///
/// # Safety
/// As [`launch1`], for both inputs.
pub(crate) unsafe fn launch2<A: Element, B: Element, O: Element>(
    out: &View<O>,
    a: &View<A>,
    b: &View<B>,
    k: impl Fn(Src<'_, A>, Src<'_, B>, &mut [O]) + Sync,
) {
    let plan = Plan::new(&out.shape, [&out.strides, &a.strides, &b.strides]);
    let [so, sa, sb] = plan.inner_strides();
    let (po, pa, pb) = (Ptr(out.ptr), Ptr(a.ptr), Ptr(b.ptr));
    let init = || (Block::<O>::new(), Block::<A>::new(), Block::<B>::new());
    blocks(&plan, init, |(bo, ba, bb), offs, i, n| {
        // SAFETY: as in `launch1`.
        unsafe {
            let a = source(pa.at(offs[1] + i * sa), sa, n, ba);
            let b = source(pb.at(offs[2] + i * sb), sb, n, bb);
            sink(po.at(offs[0] + i * so), so, n, bo, |o| k(a, b, o));
        }
    });
}

/// Runs the flat kernel `k(a, b, c, out)` over every element.
///
/// # Safety
/// As [`launch1`], for all three inputs.
pub(crate) unsafe fn launch3<A: Element, B: Element, C: Element, O: Element>(
    out: &View<O>,
    a: &View<A>,
    b: &View<B>,
    c: &View<C>,
    k: impl Fn(Src<'_, A>, Src<'_, B>, Src<'_, C>, &mut [O]) + Sync,
) {
    let plan = Plan::new(
        &out.shape,
        [&out.strides, &a.strides, &b.strides, &c.strides],
    );
    let [so, sa, sb, sc] = plan.inner_strides();
    let (po, pa, pb, pc) = (Ptr(out.ptr), Ptr(a.ptr), Ptr(b.ptr), Ptr(c.ptr));
    let init = || {
        let blocks = (Block::<A>::new(), Block::<B>::new(), Block::<C>::new());
        (Block::<O>::new(), blocks)
    };
    blocks(&plan, init, |(bo, (ba, bb, bc)), offs, i, n| {
        // SAFETY: as in `launch1`.
        unsafe {
            let a = source(pa.at(offs[1] + i * sa), sa, n, ba);
            let b = source(pb.at(offs[2] + i * sb), sb, n, bb);
            let c = source(pc.at(offs[3] + i * sc), sc, n, bc);
            sink(po.at(offs[0] + i * so), so, n, bo, |o| k(a, b, c, o));
        }
    });
}

/// `out[i] = f(a[i], b[i])` for any mix of slices and splats (the four
/// cases get their own loops so that each vectorises).
#[inline(always)]
pub(crate) fn map2<A: Copy, B: Copy, O: Copy>(
    a: Src<'_, A>,
    b: Src<'_, B>,
    out: &mut [O],
    f: impl Fn(A, B) -> O,
) {
    match (a, b) {
        (Src::Slice(a), Src::Slice(b)) => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
        (Src::Slice(a), Src::Splat(y)) => {
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, y);
            }
        }
        (Src::Splat(x), Src::Slice(b)) => {
            for (o, &y) in out.iter_mut().zip(b) {
                *o = f(x, y);
            }
        }
        (Src::Splat(x), Src::Splat(y)) => {
            let v = f(x, y);
            out.fill(v);
        }
    }
}

/// `out[i] = src[i]`.
#[inline(always)]
pub(crate) fn copy_into<T: Copy>(src: Src<'_, T>, out: &mut [T]) {
    match src {
        Src::Slice(s) => out.copy_from_slice(&s[..out.len()]),
        Src::Splat(v) => out.fill(v),
    }
}

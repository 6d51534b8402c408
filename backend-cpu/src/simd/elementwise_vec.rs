//! The SIMD elementwise kernels, written once over [`F32x`] (a vector of
//! f32 lanes of one ISA tier) and instantiated per tier by
//! [`tier_kernels!`] inside `#[target_feature]` functions named
//! `<tier>_<op>_f32` (`avx512_add_f32`, `sse2_relu_f32`, ...).
//!
//! Lane ops reproduce the scalar definitions in `elementwise/scalar.rs`
//! bit for bit where the math is exact (arithmetic, `max`/`min` with their
//! NaN rules, `sqrt`, `relu`, `neg`, `abs`). `exp` and the functions built
//! on it (`sigmoid`, `silu`, `tanh`, `gelu_tanh`) use a Cephes-style
//! polynomial accurate to a few ulp.
//!
//! Everything here is `#[inline(always)]`, so that after inlining into a
//! tier's `#[target_feature]` function every intrinsic is compiled with
//! that tier's features.

/// A vector of f32 lanes of one ISA tier.
///
/// A value of an implementing type exists only where the CPU supports its
/// tier: the only constructors, [`F32x::splat`] and [`F32x::load`], are
/// `unsafe` with that contract. The lane-wise methods take such a value
/// and are therefore safe.
pub(crate) trait F32x: Copy {
    /// Lanes per vector (at most 16).
    const LANES: usize;
    /// A lane mask from a comparison.
    type Mask: Copy;

    /// Every lane `v`.
    ///
    /// # Safety
    /// The CPU supports this tier.
    unsafe fn splat(v: f32) -> Self;
    /// `LANES` values from `p` (unaligned).
    ///
    /// # Safety
    /// The CPU supports this tier; `p` is valid for reading `LANES` f32.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores the lanes at `p` (unaligned).
    ///
    /// # Safety
    /// `p` is valid for writing `LANES` f32.
    unsafe fn store(self, p: *mut f32);
    /// Stores the lanes at `p` with a non-temporal (streaming) hint where
    /// the tier has one, bypassing the caches; plain [`F32x::store`]
    /// otherwise. Streaming stores must be followed by
    /// [`F32x::stream_fence`] before the data is handed on.
    ///
    /// # Safety
    /// `p` is valid for writing `LANES` f32 and aligned to `4 * LANES` bytes.
    #[inline(always)]
    unsafe fn stream(self, p: *mut f32) {
        // SAFETY: per the caller.
        unsafe { self.store(p) }
    }
    /// Orders this thread's earlier streaming stores before its later
    /// stores (`sfence` on x86; nothing where [`F32x::stream`] is a plain
    /// store).
    #[inline(always)]
    fn stream_fence(self) {}

    /// Every lane `v` (`self` vouches for the tier).
    fn constant(self, v: f32) -> Self;
    /// `self + o`
    fn add(self, o: Self) -> Self;
    /// `self - o`
    fn sub(self, o: Self) -> Self;
    /// `self * o`
    fn mul(self, o: Self) -> Self;
    /// `self / o`
    fn div(self, o: Self) -> Self;
    /// `self * b + c`, fused where the tier has FMA.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self > o ? self : o` per lane (so a NaN in either returns `o`).
    fn max(self, o: Self) -> Self;
    /// `self < o ? self : o` per lane (so a NaN in either returns `o`).
    fn min(self, o: Self) -> Self;
    /// `-self` (flips the sign bit).
    fn neg(self) -> Self;
    /// `|self|` (clears the sign bit).
    fn abs(self) -> Self;
    /// Correctly rounded square root.
    fn sqrt(self) -> Self;
    /// Rounds to the nearest integer, ties to even (`|self| < 2^31`).
    fn round(self) -> Self;
    /// `2^self` for integral `self` in `[-126, 127]`.
    fn pow2i(self) -> Self;
    /// `|self|` with the sign bit of `sign`.
    fn copysign(self, sign: Self) -> Self;
    /// The lanes' bits ANDed with `mask`.
    fn and_bits(self, mask: u32) -> Self;
    /// `self > o` per lane.
    fn gt(self, o: Self) -> Self::Mask;
    /// `self < o` per lane.
    fn lt(self, o: Self) -> Self::Mask;
    /// `self` is NaN, per lane.
    fn is_nan(self) -> Self::Mask;
    /// `m ? a : b` per lane.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
}

/// Alignment in bytes that streaming kernels bring the output to before
/// their vector loop (one cache line, so lines are written whole).
const STREAM_ALIGN: usize = 64;

/// Elements before `out` reaches [`STREAM_ALIGN`] (at most 15, capped at
/// `n`); 0 when not streaming.
#[inline(always)]
fn head<const NT: bool>(out: *const f32, n: usize) -> usize {
    if !NT {
        return 0;
    }
    let mis = out as usize % STREAM_ALIGN;
    let pad = if mis == 0 {
        0
    } else {
        (STREAM_ALIGN - mis) / 4
    };
    pad.min(n)
}

/// Stores `v` at `p`: streaming when `NT`.
///
/// # Safety
/// As [`F32x::store`]; with `NT`, as [`F32x::stream`].
#[inline(always)]
unsafe fn put<V: F32x, const NT: bool>(v: V, p: *mut f32) {
    // SAFETY: per the caller.
    unsafe {
        if NT {
            v.stream(p)
        } else {
            v.store(p)
        }
    }
}

/// Applies `f` to up to 16 elements of `x` into `out` (equal lengths)
/// through zero-padded vectors.
///
/// # Safety
/// The CPU supports `V`'s tier.
#[inline(always)]
unsafe fn padded1<V: F32x>(x: &[f32], out: &mut [f32], f: &impl Fn(V) -> V) {
    let m = out.len();
    let (mut bx, mut bo) = ([0f32; 16], [0f32; 16]);
    bx[..m].copy_from_slice(&x[..m]);
    for k in (0..m).step_by(V::LANES) {
        // SAFETY: the tier is the caller's guarantee; k < m <= 16 and
        // LANES divides 16, so k + LANES <= 16.
        unsafe { f(V::load(bx.as_ptr().add(k))).store(bo.as_mut_ptr().add(k)) };
    }
    out.copy_from_slice(&bo[..m]);
}

/// Applies `f` to every `LANES`-wide chunk of `x` into `out` (the shorter
/// length wins); the tail goes through a zero-padded vector. With `NT`
/// the output is written with streaming stores (after a head that brings
/// it to a cache-line boundary) and fenced before returning.
///
/// # Safety
/// The CPU supports `V`'s tier.
#[inline(always)]
pub(crate) unsafe fn map1<V: F32x, const NT: bool>(x: &[f32], out: &mut [f32], f: impl Fn(V) -> V) {
    let n = x.len().min(out.len());
    let l = V::LANES;
    let (px, po) = (x.as_ptr(), out.as_mut_ptr());
    let mut i = head::<NT>(po, n);
    // SAFETY: the tier is the caller's guarantee; every load reads
    // x[i..i + l] and every store writes out[i..i + l] with i + l <= n;
    // after the head, out + i is STREAM_ALIGN-aligned when streaming.
    unsafe {
        padded1(&x[..i], &mut out[..i], &f);
        while i + 4 * l <= n {
            let v = [0, 1, 2, 3].map(|k| V::load(px.add(i + k * l)));
            for (k, v) in v.into_iter().enumerate() {
                put::<V, NT>(f(v), po.add(i + k * l));
            }
            i += 4 * l;
        }
        while i + l <= n {
            put::<V, NT>(f(V::load(px.add(i))), po.add(i));
            i += l;
        }
        padded1(&x[i..n], &mut out[i..n], &f);
        if NT {
            V::splat(0.0).stream_fence();
        }
    }
}

/// Applies `f` lane-wise to up to 16 elements of `a` and `b` into `out`
/// (equal lengths) through zero-padded vectors.
///
/// # Safety
/// The CPU supports `V`'s tier.
#[inline(always)]
unsafe fn padded2<V: F32x>(a: &[f32], b: &[f32], out: &mut [f32], f: &impl Fn(V, V) -> V) {
    let m = out.len();
    let (mut ba, mut bb, mut bo) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    ba[..m].copy_from_slice(&a[..m]);
    bb[..m].copy_from_slice(&b[..m]);
    for k in (0..m).step_by(V::LANES) {
        // SAFETY: the tier is the caller's guarantee; k + LANES <= 16.
        unsafe {
            let (x, y) = (V::load(ba.as_ptr().add(k)), V::load(bb.as_ptr().add(k)));
            f(x, y).store(bo.as_mut_ptr().add(k))
        };
    }
    out.copy_from_slice(&bo[..m]);
}

/// Applies `f` lane-wise to `a` and `b` into `out` (the shortest length
/// wins); the tail goes through zero-padded vectors. `NT` as in [`map1`].
///
/// # Safety
/// The CPU supports `V`'s tier.
#[inline(always)]
pub(crate) unsafe fn map2<V: F32x, const NT: bool>(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(V, V) -> V,
) {
    let n = a.len().min(b.len()).min(out.len());
    let l = V::LANES;
    let (pa, pb, po) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    let mut i = head::<NT>(po, n);
    // SAFETY: the tier is the caller's guarantee; loads read a[i..i + l]
    // and b[i..i + l], stores write out[i..i + l], with i + l <= n; after
    // the head, out + i is STREAM_ALIGN-aligned when streaming.
    unsafe {
        padded2(&a[..i], &b[..i], &mut out[..i], &f);
        while i + 4 * l <= n {
            let x = [0, 1, 2, 3].map(|k| V::load(pa.add(i + k * l)));
            let y = [0, 1, 2, 3].map(|k| V::load(pb.add(i + k * l)));
            for k in 0..4 {
                put::<V, NT>(f(x[k], y[k]), po.add(i + k * l));
            }
            i += 4 * l;
        }
        while i + l <= n {
            put::<V, NT>(f(V::load(pa.add(i)), V::load(pb.add(i))), po.add(i));
            i += l;
        }
        padded2(&a[i..n], &b[i..n], &mut out[i..n], &f);
        if NT {
            V::splat(0.0).stream_fence();
        }
    }
}

/// `out[i] = f(a[i], b)`.
///
/// # Safety
/// The CPU supports `V`'s tier.
#[inline(always)]
pub(crate) unsafe fn map_vs<V: F32x, const NT: bool>(
    a: &[f32],
    b: f32,
    out: &mut [f32],
    f: impl Fn(V, V) -> V,
) {
    // SAFETY: the tier is the caller's guarantee.
    unsafe {
        let b = V::splat(b);
        map1::<V, NT>(a, out, |x: V| f(x, b))
    }
}

/// `out[i] = f(a, b[i])`.
///
/// # Safety
/// The CPU supports `V`'s tier.
#[inline(always)]
pub(crate) unsafe fn map_sv<V: F32x, const NT: bool>(
    a: f32,
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(V, V) -> V,
) {
    // SAFETY: the tier is the caller's guarantee.
    unsafe {
        let a = V::splat(a);
        map1::<V, NT>(b, out, |y: V| f(a, y))
    }
}

/// `a + b`
#[inline(always)]
pub(crate) fn add<V: F32x>(a: V, b: V) -> V {
    a.add(b)
}

/// `a - b`
#[inline(always)]
pub(crate) fn sub<V: F32x>(a: V, b: V) -> V {
    a.sub(b)
}

/// `a * b`
#[inline(always)]
pub(crate) fn mul<V: F32x>(a: V, b: V) -> V {
    a.mul(b)
}

/// `a / b`
#[inline(always)]
pub(crate) fn div<V: F32x>(a: V, b: V) -> V {
    a.div(b)
}

/// `max(a, b)`, NaN when either is (as `scalar::Maximum`).
#[inline(always)]
pub(crate) fn maximum<V: F32x>(a: V, b: V) -> V {
    V::select(a.is_nan(), a, a.max(b))
}

/// `min(a, b)`, NaN when either is (as `scalar::Minimum`).
#[inline(always)]
pub(crate) fn minimum<V: F32x>(a: V, b: V) -> V {
    V::select(a.is_nan(), a, a.min(b))
}

/// `-x`
#[inline(always)]
pub(crate) fn neg<V: F32x>(x: V) -> V {
    x.neg()
}

/// `|x|`
#[inline(always)]
pub(crate) fn abs<V: F32x>(x: V) -> V {
    x.abs()
}

/// `sqrt x`
#[inline(always)]
pub(crate) fn sqrt<V: F32x>(x: V) -> V {
    x.sqrt()
}

/// `1 / sqrt x` (a true division, as the portable kernel).
#[inline(always)]
pub(crate) fn rsqrt<V: F32x>(x: V) -> V {
    x.constant(1.0).div(x.sqrt())
}

/// `0 > x ? 0 : x` (as `scalar::Relu`).
#[inline(always)]
pub(crate) fn relu<V: F32x>(x: V) -> V {
    x.constant(0.0).max(x)
}

/// `x > 0 ? dy : 0` (as `scalar::Relu::grad`).
#[inline(always)]
pub(crate) fn relu_backward<V: F32x>(x: V, dy: V) -> V {
    let zero = x.constant(0.0);
    V::select(x.gt(zero), dy, zero)
}

/// `ln 2 - 0.693359375` (Cephes `expf`'s split of `ln 2`), negated.
#[allow(
    clippy::excessive_precision,
    reason = "Cephes coefficients, digit for digit"
)]
const EXP_C2: f32 = 2.12194440e-4;
/// `e^r - 1 - r = r^2 P(r)` on `|r| <= ln 2 / 2` (Cephes `expf`).
#[allow(
    clippy::excessive_precision,
    reason = "Cephes coefficients, digit for digit"
)]
const EXP_P: [f32; 6] = [
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
];
/// `tanh x = x + x^3 P(x^2)` on `|x| < 0.625` (Cephes `tanhf`).
#[allow(
    clippy::excessive_precision,
    reason = "Cephes coefficients, digit for digit"
)]
const TANH_P: [f32; 5] = [
    -5.70498872745e-3,
    2.06390887954e-2,
    -5.37397155531e-2,
    1.33314422036e-1,
    -3.33332819422e-1,
];

/// `e^x`: `x = n ln 2 + r` with `|r| <= ln2 / 2`, `e^r` by the Cephes
/// `expf` polynomial, and `2^n` applied as two factors so that results down
/// in the subnormal range come out right.
#[inline(always)]
pub(crate) fn exp<V: F32x>(x: V) -> V {
    exp_sum(x, x.constant(0.0))
}

/// `e^(x + lo)` for a small `lo` that `x` cannot hold: `lo` joins after the
/// exact part of the range reduction, so it is not lost to rounding.
#[inline(always)]
pub(crate) fn exp_sum<V: F32x>(x: V, lo: V) -> V {
    let c = |v: f32| x.constant(v);
    // NaN passes both clamps (`max`/`min` return their second operand).
    let x = c(89.0).min(c(-110.0).max(x));
    let n = x.mul(c(std::f32::consts::LOG2_E)).round();
    // ln 2 = 355/512 + 2.12194440e-4...: n * 355/512 is exact.
    let r = n.mul_add(c(-355.0 / 512.0), x);
    let r = n.mul_add(c(EXP_C2), r).add(lo);
    let mut p = c(EXP_P[0]);
    for &k in &EXP_P[1..] {
        p = p.mul_add(r, c(k));
    }
    let y = p.mul_add(r.mul(r), r).add(c(1.0));
    let n1 = n.mul(c(0.5)).round();
    y.mul(n1.pow2i()).mul(n.sub(n1).pow2i())
}

/// `1 / (1 + e^-x)`
#[inline(always)]
pub(crate) fn sigmoid<V: F32x>(x: V) -> V {
    let one = x.constant(1.0);
    one.div(one.add(exp(x.neg())))
}

/// `x / (1 + e^-x)`
#[inline(always)]
pub(crate) fn silu<V: F32x>(x: V) -> V {
    x.div(x.constant(1.0).add(exp(x.neg())))
}

/// `x / (1 + e^(-2u))`, `u = sqrt(2/pi) (x + 0.044715 x^3)`.
#[inline(always)]
pub(crate) fn gelu_tanh<V: F32x>(x: V) -> V {
    const C: f32 = 0.797_884_6;
    let u = x
        .mul(x)
        .mul_add(x.constant(C * 0.044_715), x.constant(C))
        .mul(x);
    x.div(x.constant(1.0).add(exp(u.mul(x.constant(-2.0)))))
}

/// `erfc(z) e^(z^2) / t` with `t = 1 / (1 + z/2)`, as a degree-10
/// polynomial in `t` (a Chebyshev fit made with mpmath's `chebyfit` over
/// `z` in `[0, 10.1]`; relative error 5e-9 before f32 rounding).
const ERFCX_T: [f32; 11] = [
    0.032_625_556,
    -0.172_995_35,
    0.336_177_9,
    -0.224_487_14,
    -0.081_325_6,
    0.071_145,
    0.040_532_23,
    0.189_376_24,
    0.244_554_17,
    0.282_310_8,
    0.282_086_2,
];

/// `x Phi(x)` with `Phi(x) = 1 - erfc(x / sqrt 2) / 2` (`x >= 0`), or
/// `erfc(|x| / sqrt 2) / 2` (`x < 0`), and `erfc(z) = e^(-z^2) t P(t)`.
/// `z^2 = x^2 / 2` is split into an exact high part (`x` cut to 12 bits)
/// and a small rest for [`exp_sum`], so the negative tail keeps its
/// relative accuracy.
#[inline(always)]
pub(crate) fn gelu_erf<V: F32x>(x: V) -> V {
    let c = |v: f32| x.constant(v);
    // erfc(15 / sqrt 2) is 0 in f32; the clamp keeps inf out (NaN passes).
    let ax = c(15.0).min(x.abs());
    let xh = ax.and_bits(0xFFFF_F000);
    let hi = xh.mul(xh).mul(c(-0.5));
    let lo = ax.sub(xh).mul(ax.add(xh)).mul(c(-0.5));
    let t = c(1.0).div(ax.mul_add(c(0.5 * std::f32::consts::FRAC_1_SQRT_2), c(1.0)));
    let mut p = c(ERFCX_T[0]);
    for &k in &ERFCX_T[1..] {
        p = p.mul_add(t, c(k));
    }
    // Phi = e^(-z^2) q for x < 0. In the far tail e^(-z^2) is subnormal:
    // multiply it in last, so that only the final product rounds there.
    let q = t.mul(p).mul(c(0.5));
    let e = exp_sum(hi, lo);
    let neg = x.mul(q).mul(e);
    let pos = x.mul(c(1.0).sub(e.mul(q)));
    V::select(x.lt(c(0.0)), neg, pos)
}

/// `tanh x`: the Cephes `tanhf` odd polynomial below 0.625, else
/// `1 - 2 / (e^(2|x|) + 1)` with the sign of `x`.
#[inline(always)]
pub(crate) fn tanh<V: F32x>(x: V) -> V {
    let c = |v: f32| x.constant(v);
    let ax = x.abs();
    let z = x.mul(x);
    let mut p = c(TANH_P[0]);
    for &k in &TANH_P[1..] {
        p = p.mul_add(z, c(k));
    }
    let small = p.mul(z).mul_add(x, x);
    let e = exp(ax.add(ax));
    let big = c(1.0).sub(c(2.0).div(e.add(c(1.0)))).copysign(x);
    V::select(ax.lt(c(0.625)), small, big)
}

/// Defines one tier's kernels (`#[target_feature]` wrappers around the
/// generic maps, named by the caller) and its `plug`, which installs them
/// in a `Table`.
macro_rules! tier_kernels {
    (
        tier: $tier:expr, feature: $feat:literal, vec: $V:ty;
        binary { $($bop:ident => $vv:ident, $vs:ident, $sv:ident = $bf:ident;)* }
        unary { $($uop:ident => $un:ident = $uf:ident;)* }
        relu_backward => $rb:ident;
    ) => {
        use super::kernels::{bin_slot, un_slot, BinKernels, Table};
        use super::simd_vec as v;
        use sunrise_backend_api::OpId;

        $(
            #[doc = concat!("`", stringify!($bf), "` of two f32 slices with ", $feat, ".")]
            #[doc = ""]
            #[doc = "# Safety"]
            #[doc = concat!("The CPU supports ", $feat, ".")]
            #[target_feature(enable = $feat)]
            pub(crate) unsafe fn $vv<const NT: bool>(a: &[f32], b: &[f32], out: &mut [f32]) {
                // SAFETY: the caller guarantees the tier's features.
                unsafe { v::map2::<$V, NT>(a, b, out, |a, b| v::$bf::<$V>(a, b)) }
            }

            #[doc = concat!("`", stringify!($bf), "` of an f32 slice and a scalar with ", $feat, ".")]
            #[doc = ""]
            #[doc = "# Safety"]
            #[doc = concat!("The CPU supports ", $feat, ".")]
            #[target_feature(enable = $feat)]
            pub(crate) unsafe fn $vs<const NT: bool>(a: &[f32], b: f32, out: &mut [f32]) {
                // SAFETY: the caller guarantees the tier's features.
                unsafe { v::map_vs::<$V, NT>(a, b, out, |a, b| v::$bf::<$V>(a, b)) }
            }

            #[doc = concat!("`", stringify!($bf), "` of a scalar and an f32 slice with ", $feat, ".")]
            #[doc = ""]
            #[doc = "# Safety"]
            #[doc = concat!("The CPU supports ", $feat, ".")]
            #[target_feature(enable = $feat)]
            pub(crate) unsafe fn $sv<const NT: bool>(a: f32, b: &[f32], out: &mut [f32]) {
                // SAFETY: the caller guarantees the tier's features.
                unsafe { v::map_sv::<$V, NT>(a, b, out, |a, b| v::$bf::<$V>(a, b)) }
            }
        )*

        $(
            #[doc = concat!("`", stringify!($uf), "` of an f32 slice with ", $feat, ".")]
            #[doc = ""]
            #[doc = "# Safety"]
            #[doc = concat!("The CPU supports ", $feat, ".")]
            #[target_feature(enable = $feat)]
            pub(crate) unsafe fn $un<const NT: bool>(x: &[f32], out: &mut [f32]) {
                // SAFETY: the caller guarantees the tier's features.
                unsafe { v::map1::<$V, NT>(x, out, |x| v::$uf::<$V>(x)) }
            }
        )*

        #[doc = concat!("`relu` backward `(x, dy) -> dx` on f32 with ", $feat, ".")]
        #[doc = ""]
        #[doc = "# Safety"]
        #[doc = concat!("The CPU supports ", $feat, ".")]
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $rb(x: &[f32], dy: &[f32], dx: &mut [f32]) {
            // SAFETY: the caller guarantees the tier's features.
            unsafe { v::map2::<$V, false>(x, dy, dx, |x, dy| v::relu_backward::<$V>(x, dy)) }
        }

        /// Installs this tier's kernels in `t`. Only [`super::kernels::table_for`]
        /// calls it, after checking that the CPU supports the tier.
        pub(crate) fn plug(t: &mut Table) {
            t.tier = $tier;
            $(
                t.binary[bin_slot(OpId::$bop)] =
                    BinKernels { vv: $vv::<false>, vs: $vs::<false>, sv: $sv::<false> };
                t.binary_nt[bin_slot(OpId::$bop)] =
                    BinKernels { vv: $vv::<true>, vs: $vs::<true>, sv: $sv::<true> };
            )*
            $(
                t.unary[un_slot(OpId::$uop)] = $un::<false>;
                t.unary_nt[un_slot(OpId::$uop)] = $un::<true>;
            )*
            t.relu_backward = $rb;
        }
    };
}
pub(crate) use tier_kernels;

//! Shared helpers of the elementwise tests: operand layouts, f64
//! references, ulp distances.

use sunrise_backend_api::ops::{AxisParams, FillParams, UnaryBackwardParams};
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::strided::View;
use sunrise_backend_cpu::testing::HostTensor;

pub(crate) const M: usize = 7;
pub(crate) const N: usize = 19;

/// How a `[M, N]` operand is laid out in its buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Layout {
    Contig,
    /// Stored column-major (strides `[1, M]`).
    Transposed,
    /// Offset 3, rows 2N+1 apart, every other column: gaps hold junk.
    Sliced,
    /// One row repeated (strides `[0, 1]`).
    Row,
    /// One column repeated (strides `[1, 0]`).
    Col,
    /// One value everywhere (strides `[0, 0]`).
    Scalar,
}

pub(crate) const INPUTS: [Layout; 6] = [
    Layout::Contig,
    Layout::Transposed,
    Layout::Sliced,
    Layout::Row,
    Layout::Col,
    Layout::Scalar,
];
pub(crate) const OUTPUTS: [Layout; 3] = [Layout::Contig, Layout::Transposed, Layout::Sliced];

/// An operand: its tensor, its logical row-major contents, and where the
/// junk lies in its buffer (for outputs: what must stay untouched).
pub(crate) struct Operand<T> {
    pub t: HostTensor,
    pub vals: Vec<T>,
    pub backing: Vec<T>,
}

/// A `[m, n]` operand in `layout` filled by `gen`, junk `junk` in the gaps.
pub(crate) fn operand<T: Element>(
    m: usize,
    n: usize,
    layout: Layout,
    junk: T,
    mut gen: impl FnMut() -> T,
) -> Operand<T> {
    let (backing, strides, offset) = match layout {
        Layout::Contig => ((0..m * n).map(|_| gen()).collect(), vec![n, 1], 0),
        Layout::Transposed => ((0..m * n).map(|_| gen()).collect(), vec![1, m], 0),
        Layout::Sliced => {
            let mut b = vec![junk; 3 + m * (2 * n + 1)];
            for i in 0..m {
                for j in 0..n {
                    b[3 + i * (2 * n + 1) + 2 * j] = gen();
                }
            }
            (b, vec![2 * n + 1, 2], 3)
        }
        Layout::Row => ((0..n).map(|_| gen()).collect(), vec![0, 1], 0),
        Layout::Col => ((0..m).map(|_| gen()).collect(), vec![1, 0], 0),
        Layout::Scalar => (vec![gen()], vec![0, 0], 0),
    };
    let t = HostTensor::strided(&backing, &[m, n], &strides, offset);
    let vals = t.read::<T>();
    Operand { t, vals, backing }
}

/// A zeroed-looking output in `layout` (junk in the gaps and elements).
pub(crate) fn output<T: Element>(layout: Layout, junk: T) -> Operand<T> {
    operand(M, N, layout, junk, || junk)
}

/// The whole buffer behind `o`, as `T`.
pub(crate) fn whole<T: Element>(o: &Operand<T>) -> Vec<T> {
    let mut d = o.t.desc;
    d.rank = 1;
    d.shape[0] = o.backing.len() as i64;
    d.strides[0] = 1;
    d.byte_offset = 0;
    // SAFETY: the descriptor spans exactly the tensor's live buffer.
    let v = unsafe { View::<T>::new(&d) }.expect("view of the whole buffer");
    // SAFETY: nothing writes the buffer meanwhile.
    unsafe { v.to_vec() }
}

/// Checks that an op wrote nothing outside its output view.
pub(crate) fn assert_gaps_untouched<T: Element + PartialEq>(o: &Operand<T>, what: &str) {
    if let Layout::Sliced = layout_of(o) {
        let now = whole(o);
        for (k, (a, b)) in now.iter().zip(&o.backing).enumerate() {
            let inside =
                k >= 3 && ((k - 3) % (2 * N + 1)).is_multiple_of(2) && (k - 3) / (2 * N + 1) < M;
            if !inside {
                assert!(a == b, "{what}: gap element {k} was overwritten");
            }
        }
    }
}

pub(crate) fn layout_of<T>(o: &Operand<T>) -> Layout {
    if o.t.desc.byte_offset != 0 {
        Layout::Sliced
    } else if o.t.desc.strides[0] == 1 {
        Layout::Transposed
    } else {
        Layout::Contig
    }
}

/// Distance in f32 units in the last place (both NaN: 0).
pub(crate) fn ulps(a: f32, b: f32) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    let key = |v: f32| {
        let i = v.to_bits() as i32 as i64;
        if i < 0 {
            i64::from(i32::MIN) - i
        } else {
            i
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

pub(crate) fn code<T>(r: sunrise_backend_api::Result<T>) -> StatusCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code,
    }
}

// ---------------------------------------------------------------- references

/// erf by its series (|x| < 3) or through the continued fraction of erfc.
pub(crate) fn erf_ref(x: f64) -> f64 {
    let ax = x.abs();
    let v = if ax < 3.0 {
        let (mut term, mut sum, mut k) = (ax, ax, 0.0);
        while term > 1e-18 * sum {
            k += 1.0;
            term *= 2.0 * ax * ax / (2.0 * k + 1.0);
            sum += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-ax * ax).exp() * sum
    } else {
        1.0 - erfc_cf(ax)
    };
    v.copysign(x)
}

/// erfc(x) for x >= 3 by its continued fraction.
pub(crate) fn erfc_cf(x: f64) -> f64 {
    let mut f = x;
    for k in (1..80).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

pub(crate) fn gelu_erf_ref(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    if z < -3.0 {
        0.5 * x * erfc_cf(-z)
    } else {
        0.5 * x * (1.0 + erf_ref(z))
    }
}

pub(crate) fn unary_ref(op: OpId, x: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    match op {
        OpId::Neg => -x,
        OpId::Abs => x.abs(),
        OpId::Exp => x.exp(),
        OpId::Log => x.ln(),
        OpId::Sqrt => x.sqrt(),
        OpId::Rsqrt => 1.0 / x.sqrt(),
        // relu keeps NaN (f64::max would drop it).
        OpId::Relu => {
            if x.is_nan() {
                x
            } else {
                x.max(0.0)
            }
        }
        OpId::GeluErf => gelu_erf_ref(x),
        OpId::GeluTanh => 0.5 * x * (1.0 + u.tanh()),
        OpId::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        OpId::Tanh => x.tanh(),
        OpId::Silu => x / (1.0 + (-x).exp()),
        _ => unreachable!("{op} is not unary"),
    }
}

/// Input range of each unary op in the tests.
pub(crate) fn domain(op: OpId) -> (f64, f64) {
    match op {
        OpId::Log | OpId::Sqrt | OpId::Rsqrt => (0.05, 20.0),
        OpId::Exp => (-30.0, 30.0),
        _ => (-6.0, 6.0),
    }
}

/// Allowed f32 error in ulp of the rounded reference. gelu_tanh's tail is
/// ill-conditioned in f32 (the roundings of u move e^(-2u) by ~|2u| ulp).
pub(crate) fn f32_ulps(op: OpId, x: f64) -> u64 {
    match op {
        OpId::Neg | OpId::Abs | OpId::Relu | OpId::Sqrt => 0,
        OpId::Rsqrt | OpId::Log => 1,
        // The SIMD tiers' erfc approximation (the portable kernel: f64).
        OpId::GeluErf => 7,
        OpId::Exp | OpId::Tanh => 3,
        OpId::Sigmoid | OpId::Silu => 4,
        OpId::GeluTanh => 6 + (3.2 * x.abs() * (1.0 + 0.045 * x * x)) as u64,
        _ => unreachable!(),
    }
}

pub(crate) fn unary_ops() -> impl Iterator<Item = OpId> {
    OpId::ALL.iter().copied().filter(|o| o.is_unary())
}

pub(crate) fn unary_backward(fwd: OpId) -> Params {
    Params::UnaryBackward(UnaryBackwardParams {
        struct_size: UnaryBackwardParams::SIZE,
        op: fwd as u32,
        reserved: 0,
    })
}

pub(crate) fn fill(value: f64) -> Params {
    Params::Fill(FillParams {
        struct_size: FillParams::SIZE,
        value,
    })
}

pub(crate) fn axis(a: u32) -> Params {
    Params::Axis(AxisParams {
        struct_size: AxisParams::SIZE,
        axis: a,
        reserved: 0,
    })
}

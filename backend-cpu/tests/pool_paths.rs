//! Every path of the pool kernels (the 2x2 stride-2 fast path on one plane
//! or on all planes at once, the general window loop, unit and non-unit
//! column strides, the pool for large ops) against a plain port of the
//! documented rule, bit for bit: random inputs with ties, signed zeros,
//! infinities and NaNs; padding; odd sizes; contiguous, sliced, gapped and
//! channels-last layouts; f32 and f64.

use std::ops::{Add, Div};

use sunrise_backend_api::OpId;
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{run, HostTensor, Rng};

/// The element operations the reference needs.
trait Num: Element + Add<Output = Self> + Div<Output = Self> {}
impl Num for f32 {}
impl Num for f64 {}

mod pool_case;

use pool_case::{case, Case};

const CASES: &[Case] = &[
    // The fast path: even and odd sizes, one or many planes.
    case([32, 16, 8, 8], [2, 2], [2, 2], [0, 0], false),
    case([32, 32, 4, 4], [2, 2], [2, 2], [0, 0], false),
    case([3, 5, 7, 9], [2, 2], [2, 2], [0, 0], false),
    case([2, 3, 6, 5], [2, 2], [2, 2], [0, 0], true),
    case([1, 1, 2, 2], [2, 2], [2, 2], [0, 0], false),
    case([4, 1, 3, 2], [2, 2], [2, 2], [0, 0], false),
    // The general loop: padding, overlap, uneven windows and strides.
    case([2, 3, 8, 8], [2, 2], [1, 1], [0, 0], false),
    case([2, 3, 8, 8], [2, 2], [2, 2], [1, 1], false),
    case([2, 3, 8, 8], [2, 2], [2, 2], [1, 1], true),
    case([1, 2, 7, 9], [3, 3], [1, 1], [1, 1], true),
    case([1, 2, 7, 9], [3, 3], [1, 1], [1, 1], false),
    case([2, 2, 11, 6], [3, 2], [2, 1], [1, 0], false),
    case([1, 3, 9, 13], [5, 4], [3, 2], [2, 2], true),
    case([3, 1, 1, 5], [1, 3], [1, 2], [0, 1], false),
    case([2, 2, 5, 5], [1, 1], [2, 2], [0, 0], false),
    // Large enough for the pool when it has several threads.
    case([8, 16, 32, 32], [2, 2], [2, 2], [0, 0], false),
    case([8, 16, 32, 32], [3, 3], [2, 2], [1, 1], false),
];

/// The documented rule in `T`, in the order the kernels are specified to
/// use: `(y_max, y_avg, dx_max, dx_avg)`.
fn reference<T: Num>(cs: &Case, x: &[T], dy: &[T]) -> [Vec<T>; 4] {
    let [n, c, h, w] = cs.nchw;
    let [_, _, oh, ow] = cs.out_shape();
    let zero = T::from_f64(0.0);
    let ny = n * c * oh * ow;
    let (mut ymax, mut yavg) = (vec![zero; ny], vec![zero; ny]);
    let (mut dmax, mut davg) = (vec![zero; x.len()], vec![zero; x.len()]);
    let nan = |v: T| v.to_f64().is_nan();
    for p in 0..n * c {
        for o in 0..oh * ow {
            let win = cs.window(o / ow, o % ow);
            let at = |&(ih, iw): &(usize, usize)| p * h * w + ih * w + iw;
            let mut best = at(&win[0]);
            for q in &win {
                let (v, b) = (x[at(q)], x[best]);
                if v > b || (nan(v) && !nan(b)) {
                    best = at(q);
                }
            }
            let yo = p * oh * ow + o;
            ymax[yo] = x[best];
            dmax[best] = dmax[best] + dy[yo];
            let div = if cs.include_pad {
                cs.kernel[0] * cs.kernel[1]
            } else {
                win.len()
            };
            let div = T::from_f64(div as f64);
            let mut s = zero;
            for q in &win {
                s = s + x[at(q)];
            }
            yavg[yo] = s / div;
            let share = dy[yo] / div;
            for q in &win {
                davg[at(q)] = davg[at(q)] + share;
            }
        }
    }
    [ymax, yavg, dmax, davg]
}

/// Random values, a third of them from a set full of ties and specials.
fn values<T: Element>(rng: &mut Rng, len: usize) -> Vec<T> {
    let special = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    (0..len)
        .map(|_| {
            let v = if rng.next_u64().is_multiple_of(3) {
                special[(rng.next_u64() % special.len() as u64) as usize]
            } else {
                rng.uniform(-2.0, 2.0)
            };
            T::from_f64(v)
        })
        .collect()
}

/// How a tensor is laid out in memory.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Contiguous,
    /// A window of a larger NCHW tensor, at an offset.
    Sliced,
    /// Row-major with a gap after every element (non-unit column stride).
    Gapped,
    /// `[N, H, W, C]` in memory.
    ChannelsLast,
}

const LAYOUTS: [Layout; 4] = [
    Layout::Contiguous,
    Layout::Sliced,
    Layout::Gapped,
    Layout::ChannelsLast,
];

/// `vals` (row-major NCHW) laid out as `how`; unused memory holds 99.
fn tensor<T: Element>(vals: &[T], shape: [usize; 4], how: Layout) -> HostTensor {
    let [n, c, h, w] = shape;
    let (strides, offset, len) = match how {
        Layout::Contiguous => ([c * h * w, h * w, w, 1], 0, n * c * h * w),
        Layout::Sliced => {
            let big = [n, c + 2, h + 1, w + 2];
            let st = [big[1] * big[2] * big[3], big[2] * big[3], big[3], 1];
            (st, 2 * st[1] + st[2] + 1, big.iter().product())
        }
        Layout::Gapped => ([2 * c * h * w, 2 * h * w, 2 * w, 2], 0, 2 * n * c * h * w),
        Layout::ChannelsLast => ([h * w * c, 1, w * c, c], 0, n * c * h * w),
    };
    let mut backing = vec![T::from_f64(99.0); len.max(1) + offset];
    for (i, &v) in vals.iter().enumerate() {
        let idx = [i / (c * h * w), i / (h * w) % c, i / w % h, i % w];
        let off: usize = offset + (0..4).map(|d| idx[d] * strides[d]).sum::<usize>();
        backing[off] = v;
    }
    HostTensor::strided(&backing, &shape, &strides, offset)
}

fn pool<T: Element>(op: OpId, cs: &Case, ins: &[&HostTensor], shape: [usize; 4]) -> Vec<T> {
    let out = HostTensor::new(&vec![T::from_f64(-7.0); shape.iter().product()], &shape);
    run(op, cs.params(), ins, &[&out]).unwrap_or_else(|e| panic!("{op} {cs:?}: {e:?}"));
    out.read::<T>()
}

/// Bit-equal, or both NaN.
fn same<T: Element>(a: T, b: T) -> bool {
    let (a, b) = (a.to_f64(), b.to_f64());
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check<T: Num>(seed: u64) {
    let mut rng = Rng::new(seed);
    for cs in CASES {
        let ys = cs.out_shape();
        let x: Vec<T> = values(&mut rng, cs.nchw.iter().product());
        let dy: Vec<T> = values(&mut rng, ys.iter().product());
        let want = reference(cs, &x, &dy);
        for (i, &xl) in LAYOUTS.iter().enumerate() {
            let dl = LAYOUTS[(i + 1) % LAYOUTS.len()];
            let (xt, dyt) = (tensor(&x, cs.nchw, xl), tensor(&dy, ys, dl));
            let got = [
                pool::<T>(OpId::MaxPool2d, cs, &[&xt], ys),
                pool::<T>(OpId::AvgPool2d, cs, &[&xt], ys),
                pool::<T>(OpId::MaxPool2dBackward, cs, &[&xt, &dyt], cs.nchw),
                pool::<T>(OpId::AvgPool2dBackward, cs, &[&dyt], cs.nchw),
            ];
            let names = ["max", "avg", "max backward", "avg backward"];
            for ((what, g), w) in names.iter().zip(&got).zip(&want) {
                if let Some(k) = (0..w.len()).find(|&k| !same(g[k], w[k])) {
                    panic!(
                        "{what} {cs:?}, x {xl:?}, dy {dl:?}, {}: element {k} is {:?}, want {:?}",
                        std::any::type_name::<T>(),
                        g[k],
                        w[k]
                    );
                }
            }
        }
    }
}

#[test]
fn every_pool_path_matches_the_rule_bit_for_bit_f32() {
    check::<f32>(71);
}

#[test]
fn every_pool_path_matches_the_rule_bit_for_bit_f64() {
    check::<f64>(72);
}

#[test]
fn a_maximum_tied_between_signed_zeros_keeps_the_first() {
    // Windows of 2x2: (-0, 0 | 0, -1) and (NaN-free) (-1, 0 | -0, 0).
    let x = [-0.0f32, 0.0, -1.0, 0.0, 0.0, -1.0, -0.0, 0.0];
    let cs = case([1, 1, 2, 4], [2, 2], [2, 2], [0, 0], false);
    let xt = HostTensor::new(&x, &cs.nchw);
    let y = pool::<f32>(OpId::MaxPool2d, &cs, &[&xt], cs.out_shape());
    assert_eq!(y.map_bits(), [(-0.0f32).to_bits(), 0.0f32.to_bits()]);
    let dy = HostTensor::new(&[1.0f32, 2.0], &cs.out_shape());
    let dx = pool::<f32>(OpId::MaxPool2dBackward, &cs, &[&xt, &dy], cs.nchw);
    assert_eq!(dx, [1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
}

/// Bits of each element, for exact comparisons that tell -0 from 0.
trait MapBits {
    fn map_bits(&self) -> Vec<u32>;
}

impl MapBits for Vec<f32> {
    fn map_bits(&self) -> Vec<u32> {
        self.iter().map(|v| v.to_bits()).collect()
    }
}

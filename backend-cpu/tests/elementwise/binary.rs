//! Binary arithmetic, comparisons and `where`.

use sunrise_backend_api::{OpId, Params};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{run, HostTensor, Rng};

use crate::common::*;

fn binary_ref(op: OpId, a: f64, b: f64) -> f64 {
    match op {
        OpId::Add => a + b,
        OpId::Sub => a - b,
        OpId::Mul => a * b,
        OpId::Div => a / b,
        OpId::Pow => a.powf(b),
        OpId::Maximum => a.max(b),
        OpId::Minimum => a.min(b),
        _ => unreachable!(),
    }
}

/// (a, b, out) layouts: every input layout meets several others, with
/// every output layout.
fn binary_layouts() -> Vec<(Layout, Layout, Layout)> {
    let mut v = vec![];
    for (i, &a) in INPUTS.iter().enumerate() {
        for (j, &b) in INPUTS.iter().enumerate() {
            if (i + 2 * j) % 3 == 0 || a == b {
                v.push((a, b, OUTPUTS[(i + j) % OUTPUTS.len()]));
            }
        }
    }
    v
}

fn binary_ops() -> impl Iterator<Item = OpId> {
    OpId::ALL.iter().copied().filter(|o| o.is_binary())
}

#[test]
fn binary_float_ops_match_reference_on_every_layout() {
    let mut rng = Rng::new(31);
    for op in binary_ops() {
        let (lo, hi) = if op == OpId::Pow {
            (0.1, 3.0)
        } else {
            (-4.0, 4.0)
        };
        for (la, lb, lo_) in binary_layouts() {
            // f32: add, sub, mul, div, max, min are exact after rounding the
            // f64 result of the same f32 inputs; pow is libm's.
            let a = operand::<f32>(M, N, la, f32::NAN, || rng.uniform(lo, hi) as f32);
            let b = operand::<f32>(M, N, lb, f32::NAN, || rng.uniform(lo, hi) as f32);
            let c = output::<f32>(lo_, -777.0);
            run(op, Params::None, &[&a.t, &b.t], &[&c.t]).unwrap();
            for (i, &g) in c.t.read::<f32>().iter().enumerate() {
                let want = binary_ref(op, a.vals[i] as f64, b.vals[i] as f64) as f32;
                let tol = if op == OpId::Pow { 2 } else { 0 };
                assert!(
                    ulps(g, want) <= tol,
                    "{op} f32 {la:?},{lb:?}->{lo_:?} [{i}]: got {g} want {want}"
                );
            }
            assert_gaps_untouched(&c, &format!("{op} f32"));
            let a = operand::<f64>(M, N, la, f64::NAN, || rng.uniform(lo, hi));
            let b = operand::<f64>(M, N, lb, f64::NAN, || rng.uniform(lo, hi));
            let c = output::<f64>(lo_, -777.0);
            run(op, Params::None, &[&a.t, &b.t], &[&c.t]).unwrap();
            for (i, &g) in c.t.read::<f64>().iter().enumerate() {
                let want = binary_ref(op, a.vals[i], b.vals[i]);
                assert!(
                    (g - want).abs() <= 1e-15 * want.abs(),
                    "{op} f64 {la:?},{lb:?} [{i}]: got {g} want {want}"
                );
            }
            assert_gaps_untouched(&c, &format!("{op} f64"));
        }
    }
}

#[test]
fn maximum_and_minimum_propagate_nan() {
    for n in [3usize, 40] {
        let mut a = vec![1f32; n];
        let mut b = vec![2f32; n];
        a[0] = f32::NAN;
        b[1] = f32::NAN;
        let (ta, tb, tc) = (
            HostTensor::new(&a, &[n]),
            HostTensor::new(&b, &[n]),
            HostTensor::zeros::<f32>(&[n]),
        );
        for op in [OpId::Maximum, OpId::Minimum] {
            run(op, Params::None, &[&ta, &tb], &[&tc]).unwrap();
            let c = tc.read::<f32>();
            assert!(c[0].is_nan() && c[1].is_nan(), "{op} n={n}: {:?}", &c[..3]);
            assert_eq!(c[2], if op == OpId::Maximum { 2.0 } else { 1.0 });
        }
    }
}

#[test]
fn integer_binary_ops_wrap_and_broadcast() {
    let mut rng = Rng::new(32);
    let gen = |rng: &mut Rng| (rng.next_u64() % 2001) as i64 - 1000;
    for op in [
        OpId::Add,
        OpId::Sub,
        OpId::Mul,
        OpId::Maximum,
        OpId::Minimum,
    ] {
        for (la, lb, lo_) in binary_layouts() {
            let a = operand::<i64>(M, N, la, 99, || gen(&mut rng));
            let b = operand::<i64>(M, N, lb, 99, || gen(&mut rng));
            let c = output::<i64>(lo_, -777);
            run(op, Params::None, &[&a.t, &b.t], &[&c.t]).unwrap();
            let want: Vec<i64> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| match op {
                    OpId::Add => x + y,
                    OpId::Sub => x - y,
                    OpId::Mul => x * y,
                    OpId::Maximum => x.max(y),
                    _ => x.min(y),
                })
                .collect();
            assert_eq!(c.t.read::<i64>(), want, "{op} i64 {la:?},{lb:?}->{lo_:?}");
            assert_gaps_untouched(&c, &format!("{op} i64"));
        }
    }
    let (a, b, c) = (
        HostTensor::new(&[i64::MAX], &[1]),
        HostTensor::new(&[1i64], &[1]),
        HostTensor::zeros::<i64>(&[1]),
    );
    run(OpId::Add, Params::None, &[&a, &b], &[&c]).unwrap();
    assert_eq!(c.read::<i64>(), [i64::MIN]);
}

#[test]
fn comparisons_produce_masks() {
    let mut rng = Rng::new(41);
    // Few distinct values, so that equality happens often.
    let mut small = move || (rng.next_u64() % 5) as f64 - 2.0;
    for op in OpId::ALL.iter().copied().filter(|o| o.is_comparison()) {
        let cmp = |x: f64, y: f64| match op {
            OpId::Eq => x == y,
            OpId::Ne => x != y,
            OpId::Lt => x < y,
            OpId::Le => x <= y,
            OpId::Gt => x > y,
            _ => x >= y,
        } as u8;
        for (la, lb, lo_) in binary_layouts() {
            let m = output::<u8>(lo_, 9);
            let a = operand::<f32>(M, N, la, f32::NAN, || small() as f32);
            let b = operand::<f32>(M, N, lb, f32::NAN, || small() as f32);
            run(op, Params::None, &[&a.t, &b.t], &[&m.t]).unwrap();
            let want: Vec<u8> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| cmp(x as f64, y as f64))
                .collect();
            assert_eq!(m.t.read::<u8>(), want, "{op} f32 {la:?},{lb:?}->{lo_:?}");
            assert_gaps_untouched(&m, &format!("{op} f32"));
            let a = operand::<f64>(M, N, la, f64::NAN, &mut small);
            let b = operand::<f64>(M, N, lb, f64::NAN, &mut small);
            run(op, Params::None, &[&a.t, &b.t], &[&m.t]).unwrap();
            let want: Vec<u8> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| cmp(x, y))
                .collect();
            assert_eq!(m.t.read::<u8>(), want, "{op} f64 {la:?},{lb:?}");
            let a = operand::<i64>(M, N, la, 0, || small() as i64);
            let b = operand::<i64>(M, N, lb, 0, || small() as i64);
            run(op, Params::None, &[&a.t, &b.t], &[&m.t]).unwrap();
            let want: Vec<u8> = a
                .vals
                .iter()
                .zip(&b.vals)
                .map(|(&x, &y)| cmp(x as f64, y as f64))
                .collect();
            assert_eq!(m.t.read::<u8>(), want, "{op} i64 {la:?},{lb:?}");
        }
        // NaN compares unequal to everything, itself included.
        let (a, b, m) = (
            HostTensor::new(&[f64::NAN, 1.0], &[2]),
            HostTensor::new(&[f64::NAN, f64::NAN], &[2]),
            HostTensor::zeros::<u8>(&[2]),
        );
        run(op, Params::None, &[&a, &b], &[&m]).unwrap();
        let want = (op == OpId::Ne) as u8;
        assert_eq!(m.read::<u8>(), [want, want], "{op} with NaN");
    }
}

fn check_where<T: Element + PartialEq>(rng: &mut Rng, gen: fn(&mut Rng) -> T) {
    for (k, (la, lb, lo_)) in binary_layouts().into_iter().enumerate() {
        let lm = INPUTS[k % INPUTS.len()];
        let mask = operand::<u8>(M, N, lm, 7, || [0u8, 1, 2][(rng.next_u64() % 3) as usize]);
        let a = operand::<T>(M, N, la, gen(rng), || gen(rng));
        let b = operand::<T>(M, N, lb, gen(rng), || gen(rng));
        let c = output::<T>(lo_, gen(rng));
        run(OpId::Where, Params::None, &[&mask.t, &a.t, &b.t], &[&c.t]).unwrap();
        let want: Vec<T> = (0..M * N)
            .map(|i| {
                if mask.vals[i] != 0 {
                    a.vals[i]
                } else {
                    b.vals[i]
                }
            })
            .collect();
        assert_eq!(
            c.t.read::<T>(),
            want,
            "where {:?} mask {lm:?} a {la:?} b {lb:?} out {lo_:?}",
            T::DTYPE
        );
        assert_gaps_untouched(&c, "where");
    }
}

#[test]
fn where_selects_on_every_dtype_and_layout() {
    let mut rng = Rng::new(51);
    check_where::<f32>(&mut rng, |r| r.uniform(-1.0, 1.0) as f32);
    check_where::<f64>(&mut rng, |r| r.uniform(-1.0, 1.0));
    check_where::<i64>(&mut rng, |r| r.next_u64() as i64);
    check_where::<u8>(&mut rng, |r| r.next_u64() as u8);
}

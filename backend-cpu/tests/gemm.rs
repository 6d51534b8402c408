//! `matmul` through the CPU backend against a naive f64 reference: odd
//! shapes, transposed and broadcast operands, alpha/beta, f32 and f64, and
//! the typed errors for bad input. (Our packed GEMM at every ISA tier is
//! tested inside the crate, in `src/gemm/tests.rs`.)

use sunrise_backend_api::ops::MatmulParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::element::Element;
use sunrise_backend_cpu::testing::{contiguous_strides, run, HostTensor, Rng};

fn params(alpha: f64, beta: f64) -> Params {
    Params::Matmul(MatmulParams {
        struct_size: MatmulParams::SIZE,
        alpha,
        beta,
    })
}

/// A strided operand: backing store, logical shape, strides, and the
/// logical row-major values the reference multiplies.
struct Operand<T> {
    tensor: HostTensor,
    logical: Vec<f64>,
    _t: std::marker::PhantomData<T>,
}

/// Reads the logical row-major elements of a strided view of `backing`.
fn logical(backing: &[f64], shape: &[usize], strides: &[usize]) -> Vec<f64> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|mut i| {
            let mut off = 0;
            for k in (0..shape.len()).rev() {
                off += (i % shape[k]) * strides[k];
                i /= shape[k];
            }
            backing[off]
        })
        .collect()
}

/// A `[batch.., rows, cols]` operand, stored transposed (`[.., cols,
/// rows]`) when `transposed`, with stride 0 on batch dims where `shared`.
fn operand<T: Element>(
    batch: &[usize],
    shared: &[bool],
    rows: usize,
    cols: usize,
    transposed: bool,
    rng: &mut Rng,
) -> Operand<T> {
    let mut stored: Vec<usize> = batch
        .iter()
        .zip(shared)
        .map(|(&b, &s)| if s { 1 } else { b })
        .collect();
    stored.extend(if transposed {
        [cols, rows]
    } else {
        [rows, cols]
    });
    let mut st = contiguous_strides(&stored);
    let r = batch.len();
    for (k, &s) in shared.iter().enumerate() {
        if s {
            st[k] = 0;
        }
    }
    if transposed {
        st.swap(r, r + 1);
    }
    let mut shape = batch.to_vec();
    shape.extend([rows, cols]);
    let backing: Vec<T> = rng.vec(stored.iter().product(), -1.0, 1.0);
    let as_f64: Vec<f64> = backing.iter().map(|v| v.to_f64()).collect();
    Operand {
        tensor: HostTensor::strided(&backing, &shape, &st, 0),
        logical: logical(&as_f64, &shape, &st),
        _t: std::marker::PhantomData,
    }
}

/// `c = alpha a b + beta c0` in f64 over row-major logical operands, with
/// `sum |terms|` per element for the error bound.
#[allow(
    clippy::too_many_arguments,
    reason = "the reference spells out every size"
)]
fn reference(
    a: &[f64],
    b: &[f64],
    c0: &[f64],
    count: usize,
    (m, k, n): (usize, usize, usize),
    alpha: f64,
    beta: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; count * m * n];
    let mut mag = vec![0.0; count * m * n];
    for t in 0..count {
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut g) = (0.0, 0.0);
                for p in 0..k {
                    let v = a[(t * m + i) * k + p] * b[(t * k + p) * n + j];
                    s += v;
                    g += v.abs();
                }
                let idx = (t * m + i) * n + j;
                let prior = if beta == 0.0 { 0.0 } else { beta * c0[idx] };
                out[idx] = alpha * s + prior;
                mag[idx] = alpha.abs() * g + prior.abs();
            }
        }
    }
    (out, mag)
}

struct Case<'a> {
    batch: &'a [usize],
    a_shared: &'a [bool],
    b_shared: &'a [bool],
    mkn: (usize, usize, usize),
    ta: bool,
    tb: bool,
    alpha: f64,
    beta: f64,
}

fn check<T: Element>(case: &Case<'_>, eps: f64, rng: &mut Rng) {
    let (m, k, n) = case.mkn;
    let a = operand::<T>(case.batch, case.a_shared, m, k, case.ta, rng);
    let b = operand::<T>(case.batch, case.b_shared, k, n, case.tb, rng);
    let count: usize = case.batch.iter().product();
    let mut cshape = case.batch.to_vec();
    cshape.extend([m, n]);
    let c0: Vec<T> = if case.beta == 0.0 {
        vec![T::from_f64(f64::NAN); count * m * n]
    } else {
        rng.vec(count * m * n, -1.0, 1.0)
    };
    let c = HostTensor::new(&c0, &cshape);
    run(
        OpId::Matmul,
        params(case.alpha, case.beta),
        &[&a.tensor, &b.tensor],
        &[&c],
    )
    .expect("matmul runs");
    let c0: Vec<f64> = c0.iter().map(|v| v.to_f64()).collect();
    let (want, mag) = reference(
        &a.logical,
        &b.logical,
        &c0,
        count,
        (m, k, n),
        case.alpha,
        case.beta,
    );
    for (i, got) in c.read::<T>().iter().enumerate() {
        let tol = (k as f64 + 2.0) * eps * mag[i] + 1e-300;
        assert!(
            (got.to_f64() - want[i]).abs() <= tol,
            "{} batch {:?} m{m} k{k} n{n} ta {} tb {} alpha {} beta {}: element {i} {} vs {}",
            T::DTYPE,
            case.batch,
            case.ta,
            case.tb,
            case.alpha,
            case.beta,
            got.to_f64(),
            want[i]
        );
    }
}

const SIZES: &[usize] = &[1, 2, 3, 7, 13, 16, 17, 31, 33, 47, 64, 67];

#[test]
fn matmul_2d_many_shapes_and_layouts() {
    let mut rng = Rng::new(11);
    let mut i = 0usize;
    for &m in SIZES {
        for &n in SIZES {
            let k = SIZES[(m * 7 + n * 3) % SIZES.len()];
            i += 1;
            let case = Case {
                batch: &[],
                a_shared: &[],
                b_shared: &[],
                mkn: (m, k, n),
                ta: i % 2 == 1,
                tb: i % 3 == 1,
                alpha: [1.0, -0.5, 2.0][i % 3],
                beta: [0.0, 1.0, 0.25][(i / 3) % 3],
            };
            check::<f32>(&case, f32::EPSILON as f64, &mut rng);
            check::<f64>(&case, f64::EPSILON, &mut rng);
        }
    }
}

#[test]
fn matmul_batched_with_broadcast_and_transposes() {
    let mut rng = Rng::new(12);
    let cases = [
        (&[3][..], &[false][..], &[true][..], (5, 9, 4)),
        (&[2, 3], &[true, false], &[false, true], (17, 3, 33)),
        (&[4], &[true], &[false], (67, 65, 66)),
        (
            &[2, 1, 3],
            &[false, false, true],
            &[true, true, false],
            (1, 7, 1),
        ),
        (&[8], &[false], &[false], (20, 20, 20)),
        (&[0, 2], &[false, false], &[false, false], (3, 3, 3)),
    ];
    for (t, &(batch, a_shared, b_shared, mkn)) in cases.iter().enumerate() {
        for (ta, tb) in [(false, false), (true, true), (t % 2 == 0, t % 2 == 1)] {
            let case = Case {
                batch,
                a_shared,
                b_shared,
                mkn,
                ta,
                tb,
                alpha: 1.5,
                beta: if ta { 0.0 } else { -1.0 },
            };
            check::<f32>(&case, f32::EPSILON as f64, &mut rng);
            check::<f64>(&case, f64::EPSILON, &mut rng);
        }
    }
}

#[test]
fn matmul_large_enough_to_thread_and_block() {
    let mut rng = Rng::new(13);
    for (mkn, ta, tb) in [
        ((300, 290, 310), false, false),
        ((129, 600, 70), true, false),
        ((70, 20, 1100), false, true),
    ] {
        let case = Case {
            batch: &[],
            a_shared: &[],
            b_shared: &[],
            mkn,
            ta,
            tb,
            alpha: 1.0,
            beta: 0.5,
        };
        check::<f32>(&case, f32::EPSILON as f64, &mut rng);
        check::<f64>(&case, f64::EPSILON, &mut rng);
    }
}

#[test]
fn matmul_empty_inner_dimension_scales_c() {
    let a = HostTensor::zeros::<f32>(&[2, 0]);
    let b = HostTensor::zeros::<f32>(&[0, 3]);
    let c = HostTensor::new(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    run(OpId::Matmul, params(1.0, 2.0), &[&a, &b], &[&c]).unwrap();
    assert_eq!(c.read::<f32>(), [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    run(OpId::Matmul, params(1.0, 0.0), &[&a, &b], &[&c]).unwrap();
    assert_eq!(c.read::<f32>(), [0.0; 6]);
}

fn expect_err(inputs: &[&HostTensor], outputs: &[&HostTensor], p: Params, code: StatusCode) {
    let err = run(OpId::Matmul, p, inputs, outputs).expect_err("bad matmul must fail");
    assert_eq!(err.code, code, "{}", err.message);
}

#[test]
fn matmul_rejects_bad_input() {
    let z = |s: &[usize]| HostTensor::zeros::<f32>(s);
    let p = params(1.0, 0.0);
    let inv = StatusCode::InvalidArgument;
    expect_err(&[&z(&[2, 3]), &z(&[4, 5])], &[&z(&[2, 5])], p, inv);
    expect_err(&[&z(&[2, 3]), &z(&[3, 5])], &[&z(&[2, 4])], p, inv);
    expect_err(&[&z(&[3]), &z(&[3])], &[&z(&[1])], p, inv);
    expect_err(&[&z(&[2, 2, 3]), &z(&[3, 5])], &[&z(&[2, 2, 5])], p, inv);
    expect_err(&[&z(&[2, 2, 3]), &z(&[3, 3, 5])], &[&z(&[2, 2, 5])], p, inv);
    expect_err(&[&z(&[2, 3])], &[&z(&[2, 5])], p, inv);
    expect_err(
        &[&z(&[2, 3]), &z(&[3, 5])],
        &[&z(&[2, 5])],
        Params::None,
        inv,
    );
    let f64b = HostTensor::zeros::<f64>(&[3, 5]);
    expect_err(&[&z(&[2, 3]), &f64b], &[&z(&[2, 5])], p, inv);
    let strided_out = HostTensor::strided(&[0f32; 20], &[2, 5], &[1, 2], 0);
    expect_err(&[&z(&[2, 3]), &z(&[3, 5])], &[&strided_out], p, inv);
    let ints = |s: &[usize]| HostTensor::zeros::<i64>(s);
    expect_err(
        &[&ints(&[2, 3]), &ints(&[3, 5])],
        &[&ints(&[2, 5])],
        p,
        StatusCode::Unsupported,
    );
}

#[test]
fn matmul_reads_broadcast_rows_and_columns() {
    // a: every row is [1, 2, 3, 4] (row stride 0); b: every column is
    // [1, -1, 2, 0.5] (column stride 0), for both dtypes and both engines'
    // packing paths (small and threaded sizes).
    for (m, n) in [(3, 5), (130, 140)] {
        let a_row = [1.0f64, 2.0, 3.0, 4.0];
        let b_col = [1.0f64, -1.0, 2.0, 0.5];
        let want = a_row.iter().zip(&b_col).map(|(x, y)| x * y).sum::<f64>();
        let a = HostTensor::strided(&a_row, &[m, 4], &[0, 1], 0);
        let b = HostTensor::strided(&b_col, &[4, n], &[1, 0], 0);
        let c = HostTensor::zeros::<f64>(&[m, n]);
        run(OpId::Matmul, params(1.0, 0.0), &[&a, &b], &[&c]).unwrap();
        assert!(c.read::<f64>().iter().all(|&v| v == want));
        let a32: Vec<f32> = a_row.iter().map(|&v| v as f32).collect();
        let b32: Vec<f32> = b_col.iter().map(|&v| v as f32).collect();
        let a = HostTensor::strided(&a32, &[m, 4], &[0, 1], 0);
        let b = HostTensor::strided(&b32, &[4, n], &[1, 0], 0);
        let c = HostTensor::zeros::<f32>(&[m, n]);
        run(OpId::Matmul, params(2.0, 0.0), &[&a, &b], &[&c]).unwrap();
        assert!(c.read::<f32>().iter().all(|&v| v as f64 == 2.0 * want));
    }
}

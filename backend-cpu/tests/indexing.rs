//! `index_select` and `index_add` against plain loops, `index_add` as the
//! backward of `index_select` (central differences), and error paths.

use sunrise_backend_api::ops::AxisParams;
use sunrise_backend_api::{OpId, Params, StatusCode};
use sunrise_backend_cpu::testing::{lay, run, HostTensor, Rng};

fn params(axis: u32) -> Params {
    Params::Axis(AxisParams {
        struct_size: AxisParams::SIZE,
        axis,
        reserved: 0,
    })
}

fn spliced(base: &[usize], axis: usize, mid: &[usize]) -> Vec<usize> {
    [&base[..axis], mid, &base[axis + 1..]].concat()
}

/// Reference `index_select` of row-major `t`.
fn select_ref<T: Copy>(t: &[T], shape: &[usize], axis: usize, idx: &[i64]) -> Vec<T> {
    let (outer, n, inner) = (
        shape[..axis].iter().product::<usize>(),
        shape[axis],
        shape[axis + 1..].iter().product::<usize>(),
    );
    let mut out = Vec::new();
    for o in 0..outer {
        for &i in idx {
            for c in 0..inner {
                out.push(t[(o * n + i as usize) * inner + c]);
            }
        }
    }
    out
}

/// Reference `index_add` into row-major `out` of shape `shape`.
fn add_ref(out: &mut [f64], shape: &[usize], axis: usize, idx: &[i64], src: &[f64]) {
    let (outer, n, inner) = (
        shape[..axis].iter().product::<usize>(),
        shape[axis],
        shape[axis + 1..].iter().product::<usize>(),
    );
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            for c in 0..inner {
                out[(o * n + i as usize) * inner + c] += src[(o * idx.len() + j) * inner + c];
            }
        }
    }
}

const INDEX_SHAPES: &[&[usize]] = &[&[], &[1], &[4], &[2, 3]];

#[test]
fn index_select_matches_reference_for_every_axis_dtype_and_layout() {
    let mut rng = Rng::new(1);
    let shape = [5usize, 4, 3];
    let t64: Vec<f64> = rng.vec(60, -5.0, 5.0);
    let t32: Vec<f32> = t64.iter().map(|&v| v as f32).collect();
    let ti: Vec<i64> = (0..60).collect();
    let tu: Vec<u8> = (0..60).map(|v| v as u8).collect();
    for axis in 0..3 {
        for ishape in INDEX_SHAPES {
            let k: usize = ishape.iter().product();
            let idx: Vec<i64> = (0..k)
                .map(|_| rng.uniform(0.0, shape[axis] as f64) as i64)
                .collect();
            let oshape = spliced(&shape, axis, ishape);
            for mode in 0..3 {
                let it = lay(&idx, ishape, if mode == 2 { 2 } else { 0 });
                macro_rules! check {
                    ($t:ty, $data:expr) => {{
                        let out = HostTensor::zeros::<$t>(&oshape);
                        run(
                            OpId::IndexSelect,
                            params(axis as u32),
                            &[&lay($data, &shape, mode), &it],
                            &[&out],
                        )
                        .unwrap();
                        assert_eq!(
                            out.read::<$t>(),
                            select_ref($data, &shape, axis, &idx),
                            "axis {axis} {ishape:?} mode {mode}"
                        );
                    }};
                }
                check!(f32, &t32);
                check!(f64, &t64);
                check!(i64, &ti);
                check!(u8, &tu);
            }
        }
    }
}

#[test]
fn index_add_matches_reference_with_repeats() {
    let mut rng = Rng::new(2);
    let shape = [4usize, 5, 3];
    for axis in 0..3 {
        for ishape in INDEX_SHAPES {
            let k: usize = ishape.iter().product();
            // Indices from a small range, so repeats accumulate.
            let idx: Vec<i64> = (0..k)
                .map(|_| rng.uniform(0.0, 2.0_f64.min(shape[axis] as f64)) as i64)
                .collect();
            let sshape = spliced(&shape, axis, ishape);
            let src: Vec<f64> = rng.vec(sshape.iter().product(), -1.0, 1.0);
            let init: Vec<f64> = rng.vec(60, -1.0, 1.0);
            let mut want = init.clone();
            add_ref(&mut want, &shape, axis, &idx, &src);
            for mode in [0, 1, 2] {
                let out = HostTensor::new(&init, &shape);
                run(
                    OpId::IndexAdd,
                    params(axis as u32),
                    &[&lay(&idx, ishape, 0), &lay(&src, &sshape, mode)],
                    &[&out],
                )
                .unwrap();
                let got = out.read::<f64>();
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-12, "axis {axis} {ishape:?} mode {mode}");
                }
                let out32 =
                    HostTensor::new(&init.iter().map(|&v| v as f32).collect::<Vec<_>>(), &shape);
                let src32: Vec<f32> = src.iter().map(|&v| v as f32).collect();
                run(
                    OpId::IndexAdd,
                    params(axis as u32),
                    &[&lay(&idx, ishape, 0), &lay(&src32, &sshape, mode)],
                    &[&out32],
                )
                .unwrap();
                for (g, w) in out32.read::<f32>().iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() < 1e-5,
                        "f32 axis {axis} {ishape:?} mode {mode}"
                    );
                }
            }
        }
    }
}

#[test]
fn index_add_is_the_backward_of_index_select() {
    // L(t) = sum(w * index_select(t, idx)); dL/dt = index_add(idx, w) into 0.
    let mut rng = Rng::new(3);
    let shape = [6usize, 3, 2];
    let t: Vec<f64> = rng.vec(36, -1.0, 1.0);
    for axis in 0..3 {
        let idx: Vec<i64> = (0..5)
            .map(|_| rng.uniform(0.0, shape[axis] as f64) as i64)
            .collect();
        let oshape = spliced(&shape, axis, &[5]);
        let w: Vec<f64> = rng.vec(oshape.iter().product(), -1.0, 1.0);
        let it = HostTensor::new(&idx, &[5]);
        let loss = |t: &[f64]| -> f64 {
            let out = HostTensor::zeros::<f64>(&oshape);
            run(
                OpId::IndexSelect,
                params(axis as u32),
                &[&HostTensor::new(t, &shape), &it],
                &[&out],
            )
            .unwrap();
            out.read::<f64>().iter().zip(&w).map(|(a, b)| a * b).sum()
        };
        let grad = HostTensor::zeros::<f64>(&shape);
        run(
            OpId::IndexAdd,
            params(axis as u32),
            &[&it, &HostTensor::new(&w, &oshape)],
            &[&grad],
        )
        .unwrap();
        let h = 1e-6;
        for (i, g) in grad.read::<f64>().iter().enumerate() {
            let (mut a, mut b) = (t.clone(), t.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&a) - loss(&b)) / (2.0 * h);
            assert!(
                (g - fd).abs() < 1e-8,
                "axis {axis} element {i}: {g} vs {fd}"
            );
        }
    }
}

#[test]
fn large_embedding_lookup_and_gradient() {
    // Parallel paths: a [1000, 64] table gathered by 4096 tokens, and the
    // gradient of a [3, 500, 40] tensor along axis 1.
    let mut rng = Rng::new(4);
    let table: Vec<f32> = rng.vec(64_000, -1.0, 1.0);
    let idx: Vec<i64> = (0..4096).map(|_| rng.uniform(0.0, 1000.0) as i64).collect();
    let out = HostTensor::zeros::<f32>(&[4096, 64]);
    run(
        OpId::IndexSelect,
        params(0),
        &[
            &HostTensor::new(&table, &[1000, 64]),
            &HostTensor::new(&idx, &[4096]),
        ],
        &[&out],
    )
    .unwrap();
    assert_eq!(out.read::<f32>(), select_ref(&table, &[1000, 64], 0, &idx));
    let idx: Vec<i64> = (0..1200).map(|_| rng.uniform(0.0, 500.0) as i64).collect();
    let src: Vec<f64> = rng.vec(3 * 1200 * 40, -1.0, 1.0);
    let mut want = vec![0.0; 3 * 500 * 40];
    add_ref(&mut want, &[3, 500, 40], 1, &idx, &src);
    let g = HostTensor::zeros::<f64>(&[3, 500, 40]);
    run(
        OpId::IndexAdd,
        params(1),
        &[
            &HostTensor::new(&idx, &[1200]),
            &HostTensor::new(&src, &[3, 1200, 40]),
        ],
        &[&g],
    )
    .unwrap();
    for (a, b) in g.read::<f64>().iter().zip(&want) {
        assert!((a - b).abs() < 1e-12);
    }
}

#[test]
fn bad_calls_are_typed_errors_and_write_nothing() {
    use StatusCode::*;
    let t = HostTensor::new(&[1.0f32; 12], &[4, 3]);
    let out = HostTensor::new(&[5.0f32; 6], &[2, 3]);
    let code = |op, axis, ins: &[&HostTensor], outs: &[&HostTensor]| {
        run(op, params(axis), ins, outs).unwrap_err().code
    };
    for bad in [[0i64, 4], [-1, 0], [3, 9]] {
        let idx = HostTensor::new(&bad, &[2]);
        assert_eq!(
            code(OpId::IndexSelect, 0, &[&t, &idx], &[&out]),
            InvalidArgument,
            "{bad:?}"
        );
        // index_add checks every index before accumulating anything
        let acc = HostTensor::new(&[5.0f32; 12], &[4, 3]);
        assert_eq!(
            code(OpId::IndexAdd, 0, &[&idx, &out], &[&acc]),
            InvalidArgument,
            "{bad:?}"
        );
        assert_eq!(acc.read::<f32>(), [5.0; 12]);
    }
    let idx = HostTensor::new(&[0i64, 1], &[2]);
    assert_eq!(
        code(OpId::IndexSelect, 2, &[&t, &idx], &[&out]),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::IndexSelect,
            0,
            &[&t, &idx],
            &[&HostTensor::zeros::<f32>(&[3, 2])]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::IndexSelect,
            0,
            &[&t, &idx],
            &[&HostTensor::zeros::<f64>(&[2, 3])]
        ),
        InvalidArgument
    );
    let fidx = HostTensor::new(&[0.0f32, 1.0], &[2]);
    assert_eq!(
        code(OpId::IndexSelect, 0, &[&t, &fidx], &[&out]),
        InvalidArgument
    );
    let acc = HostTensor::zeros::<f32>(&[4, 3]);
    assert_eq!(
        code(
            OpId::IndexAdd,
            0,
            &[&idx, &HostTensor::zeros::<f32>(&[3, 3])],
            &[&acc]
        ),
        InvalidArgument
    );
    assert_eq!(
        code(
            OpId::IndexAdd,
            0,
            &[&idx, &HostTensor::zeros::<f64>(&[2, 3])],
            &[&acc]
        ),
        InvalidArgument
    );
    assert_eq!(code(OpId::IndexAdd, 0, &[&idx], &[&acc]), InvalidArgument);
    let bytes = HostTensor::zeros::<u8>(&[2, 3]);
    assert_eq!(
        code(
            OpId::IndexAdd,
            0,
            &[&idx, &bytes],
            &[&HostTensor::zeros::<u8>(&[4, 3])]
        ),
        Unsupported
    );
}

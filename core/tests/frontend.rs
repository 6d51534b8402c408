//! The op front end: views, host transfer, broadcasting, and a typed error
//! (never a panic) for every misuse.

use sunrise::{Conv2dOptions, DType, Device, Error, Pool2dOptions, Tensor};

fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape, &Device::cpu()).unwrap()
}

fn seq(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
    t(&v, shape)
}

#[test]
fn views_share_storage_and_read_back_correctly() {
    let x = seq(&[2, 3, 4]);
    let p = x.permute(&[2, 0, 1]).unwrap();
    assert!(p.shares_storage(&x));
    assert_eq!(p.shape(), &[4, 2, 3]);
    let v = p.to_vec::<f32>().unwrap();
    // p[i, j, k] = x[j, k, i] = 12 j + 4 k + i
    for i in 0..4 {
        for j in 0..2 {
            for k in 0..3 {
                assert_eq!(v[i * 6 + j * 3 + k], (12 * j + 4 * k + i) as f32);
            }
        }
    }
    let s = x.slice(2, 1, 4, 2).unwrap(); // last dim picks 1, 3
    assert_eq!(
        s.to_vec::<f32>().unwrap(),
        vec![1., 3., 5., 7., 9., 11., 13., 15., 17., 19., 21., 23.]
    );
    let b = t(&[1., 2., 3.], &[3]).broadcast_to(&[2, 3]).unwrap();
    assert_eq!(b.strides(), &[0, 1]);
    assert_eq!(b.to_vec::<f32>().unwrap(), vec![1., 2., 3., 1., 2., 3.]);
    let r = x.transpose(0, 1).unwrap().reshape(&[3, 8]).unwrap();
    assert!(
        !r.shares_storage(&x),
        "a reshape the strides cannot express copies"
    );
    let r2 = x.reshape(&[6, usize::MAX]).unwrap();
    assert!(r2.shares_storage(&x));
    assert_eq!(r2.shape(), &[6, 4]);
    let u = x.unsqueeze(1).unwrap().squeeze(1).unwrap();
    assert_eq!(u.shape(), x.shape());
}

#[test]
fn ndarray_round_trip_and_device_copy() {
    let a = ndarray::Array::from_shape_fn((3, 2), |(i, j)| (i * 10 + j) as f64);
    let x = Tensor::from_ndarray(&a, &Device::cpu()).unwrap();
    assert_eq!(x.dtype(), DType::F64);
    let back = x.t().unwrap().to_ndarray::<f64>().unwrap();
    assert_eq!(back, a.t().into_dyn());
    let same = x.to(&Device::cpu()).unwrap();
    assert!(same.shares_storage(&x));
}

#[test]
fn broadcasting_binary_ops() {
    let a = seq(&[2, 3]);
    let b = t(&[10., 20., 30.], &[3]);
    assert_eq!(
        a.add(&b).unwrap().to_vec::<f32>().unwrap(),
        vec![10., 21., 32., 13., 24., 35.]
    );
    let c = t(&[1., 2.], &[2, 1]);
    assert_eq!(
        a.mul(&c).unwrap().to_vec::<f32>().unwrap(),
        vec![0., 1., 2., 6., 8., 10.]
    );
    let m = a.gt(&b.mul_scalar(0.1).unwrap()).unwrap();
    assert_eq!(m.dtype(), DType::U8);
    assert_eq!(m.to_vec::<u8>().unwrap(), vec![0, 0, 0, 1, 1, 1]);
    let w = Tensor::where_(&m, &a, &a.neg().unwrap()).unwrap();
    assert_eq!(w.to_vec::<f32>().unwrap(), vec![0., -1., -2., 3., 4., 5.]);
}

#[test]
fn creation_is_seeded_and_typed() {
    let cpu = Device::cpu();
    let a = Tensor::rand_normal(&[100], 0.0, 1.0, 5, DType::F32, &cpu).unwrap();
    let b = Tensor::rand_normal(&[100], 0.0, 1.0, 5, DType::F32, &cpu).unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let r = Tensor::arange(0.0, 5.0, 1.0, DType::I64, &cpu).unwrap();
    assert_eq!(r.to_vec::<i64>().unwrap(), vec![0, 1, 2, 3, 4]);
    let f = Tensor::full(&[2, 2], 1.5, DType::F64, &cpu).unwrap();
    assert_eq!(f.to_vec::<f64>().unwrap(), vec![1.5; 4]);
    assert!(matches!(
        Tensor::arange(0.0, 1.0, 0.0, DType::F32, &cpu),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn reductions_keepdim_and_matmul_shapes() {
    let x = seq(&[2, 3, 4]);
    let s = x.sum(&[0, 2], false).unwrap();
    assert_eq!(s.shape(), &[3]);
    assert_eq!(s.to_vec::<f32>().unwrap(), vec![60., 92., 124.]);
    assert_eq!(x.sum(&[1], true).unwrap().shape(), &[2, 1, 4]);
    assert_eq!(
        x.argmax(-1, false).unwrap().to_vec::<i64>().unwrap(),
        vec![3; 6]
    );
    let a = seq(&[2, 3, 4]);
    let b = seq(&[4, 5]);
    assert_eq!(a.matmul(&b).unwrap().shape(), &[2, 3, 5]);
    let v = t(&[1., 1., 1., 1.], &[4]);
    assert_eq!(a.matmul(&v).unwrap().shape(), &[2, 3]);
    assert_eq!(v.matmul(&v).unwrap().shape(), &[] as &[usize]);
    assert_eq!(x.sum_all().unwrap().item().unwrap(), 276.0);
}

#[test]
fn a_batch_against_one_matrix_matches_per_batch_products() {
    // [2, 3, 4] @ [4, 5] runs as one [6, 4] @ [4, 5] product; it must give
    // what each batch's own product gives, with a [4] vector too, and for
    // a transposed (not foldable) A.
    let a = seq(&[2, 3, 4]);
    let b = seq(&[4, 5]);
    let y = a.matmul(&b).unwrap();
    for i in 0..2 {
        let ai = a.narrow(0, i, 1).unwrap().reshape(&[3, 4]).unwrap();
        let want = ai.matmul(&b).unwrap().to_vec::<f32>().unwrap();
        let got = y.narrow(0, i, 1).unwrap().reshape(&[3, 5]).unwrap();
        assert_eq!(got.to_vec::<f32>().unwrap(), want);
    }
    let v = t(&[1., -1., 2., 0.5], &[4]);
    let yv = a.matmul(&v).unwrap();
    assert_eq!(yv.shape(), &[2, 3]);
    let ai = a.narrow(0, 1, 1).unwrap().reshape(&[3, 4]).unwrap();
    assert_eq!(
        yv.narrow(0, 1, 1)
            .unwrap()
            .reshape(&[3])
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        ai.matmul(&v).unwrap().to_vec::<f32>().unwrap()
    );
    let at = seq(&[2, 4, 3]).transpose(1, 2).unwrap();
    let yt = at.matmul(&b).unwrap();
    let want = at.contiguous().unwrap().matmul(&b).unwrap();
    assert_eq!(yt.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
}

#[test]
fn shape_errors_are_typed() {
    let a = seq(&[2, 3]);
    assert!(matches!(a.add(&seq(&[4])), Err(Error::Broadcast { .. })));
    assert!(matches!(
        a.matmul(&seq(&[2, 3])),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        a.reshape(&[4, 2]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Tensor::from_slice(&[1.0f32; 5], &[2, 3], &Device::cpu()),
        Err(Error::DataLength { .. })
    ));
    assert!(matches!(
        Tensor::concat(&[&a, &seq(&[2, 4])], 0),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Tensor::zeros(&[1; 9], DType::F32, &Device::cpu()),
        Err(Error::RankTooLarge { .. })
    ));
    assert!(matches!(
        seq(&[1; 8]).unsqueeze(0),
        Err(Error::RankTooLarge { .. })
    ));
    let x = seq(&[1, 3, 8, 8]);
    let w = seq(&[4, 2, 3, 3]);
    assert!(matches!(
        x.conv2d(&w, None, &Conv2dOptions::default()),
        Err(Error::ShapeMismatch { .. })
    ));
    let too_big = Pool2dOptions::square(9);
    assert!(matches!(
        x.max_pool2d(&too_big),
        Err(Error::InvalidArgument { .. })
    ));
    let g = seq(&[3]);
    assert!(matches!(
        a.layer_norm(&g, &seq(&[4]), 1e-5),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn dtype_axis_and_index_errors_are_typed() {
    let a = seq(&[2, 3]);
    let i = Tensor::from_slice(&[0i64, 1], &[2], &Device::cpu()).unwrap();
    assert!(matches!(a.add(&i), Err(Error::DType { .. })));
    assert!(matches!(i.exp(), Err(Error::DType { .. })));
    assert!(matches!(
        a.sum(&[2], false),
        Err(Error::AxisOutOfRange { .. })
    ));
    assert!(matches!(
        a.sum(&[1, -1], false),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(a.softmax(-3), Err(Error::AxisOutOfRange { .. })));
    assert!(matches!(
        a.transpose(0, 5),
        Err(Error::AxisOutOfRange { .. })
    ));
    assert!(matches!(
        a.slice(1, 2, 5, 1),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(a.index_select(0, &a), Err(Error::DType { .. })));
    // Out-of-range indices live on the device: the backend reports them.
    let bad = Tensor::from_slice(&[0i64, 7], &[2], &Device::cpu()).unwrap();
    match a.index_select(0, &bad) {
        Err(Error::Backend { source, .. }) => {
            assert_eq!(
                source.code,
                sunrise_backend_api::StatusCode::InvalidArgument
            )
        }
        other => panic!("expected a backend InvalidArgument, got {other:?}"),
    }
    let labels = Tensor::from_slice(&[0i64, 3], &[2], &Device::cpu()).unwrap();
    assert!(matches!(
        Tensor::cross_entropy(&a, &labels, -100),
        Err(Error::Backend { .. })
    ));
    assert!(matches!(a.to_vec::<f64>(), Err(Error::DType { .. })));
}

#[test]
fn explicit_device_that_is_missing_is_an_error_naming_it() {
    let reg = sunrise::registry::registry();
    match reg.device("cuda") {
        Err(Error::DeviceUnavailable {
            requested,
            reason,
            hint,
        }) => {
            assert_eq!(requested, "cuda");
            assert!(reason.contains("libsunrise_backend_cuda.so"), "{reason}");
            let hint = hint.unwrap_or_default();
            if reason.contains("found but skipped") {
                // A plugin built beside the tests (`cargo build`) without
                // a driver here: the hint is the missing library's package.
                assert!(!hint.is_empty(), "{reason}");
            } else {
                assert!(hint.contains("sunrise-backend-cuda"), "{reason} / {hint}");
            }
        }
        other => panic!("expected DeviceUnavailable, got {other:?}"),
    }
    assert!(matches!(
        reg.device("cpu:1"),
        Err(Error::DeviceUnavailable { .. })
    ));
    assert!(reg.device("cpu").unwrap().is_builtin_cpu());
    assert!(reg.device("auto").is_ok());
}

//! Per-op fallback: a real plugin (`libsunrise_fixture_partial.so`, the CPU
//! kernels behind a plugin that lists only fill, copy, cast, add and mul on
//! f32, plus mul on f64, which it answers `Unsupported`) runs what it has;
//! every other op runs on the built-in CPU backend, gives the same result,
//! and is counted per (backend, op, dtype, reason).

mod common;

use sunrise::plugin::load_plugin;
use sunrise::registry::{fallback_report, FallbackReason};
use sunrise::{DType, Device, OpId, Tensor};

fn partial() -> (common::TempDir, Device) {
    let dir = common::TempDir::new("fallback");
    let path = dir.copy_cdylib("sunrise-fixture-partial", "libsunrise_backend_partial.so");
    let p = load_plugin(&path).expect("the partial plugin loads");
    assert_eq!(p.name, "partial");
    (dir, Device::from_backend(p.backend, 0, "partial:0"))
}

fn count(op: &str) -> u64 {
    sunrise::registry::fallback_counts()
        .into_iter()
        .filter(|(b, o, _)| b == "partial" && o == op)
        .map(|(_, _, n)| n)
        .sum()
}

#[test]
fn missing_ops_fall_back_to_the_cpu_and_are_counted() {
    let (_dir, dev) = partial();
    let cpu = Device::cpu();
    let a = Tensor::rand_normal(&[16, 8], 0.0, 1.0, 1, DType::F32, &cpu).unwrap();
    let b = Tensor::rand_normal(&[8, 4], 0.0, 1.0, 2, DType::F32, &cpu).unwrap();
    let (pa, pb) = (a.to(&dev).unwrap(), b.to(&dev).unwrap());

    let add_f32 = || {
        count_of(OpId::Add, DType::F32, FallbackReason::Unlisted)
            + count_of(OpId::Add, DType::F32, FallbackReason::Unsupported)
    };
    let before = (add_f32(), count("matmul"), count("softmax"), count("fill"));
    let sum = pa.add(&pa).unwrap();
    let mm = pa.matmul(&pb).unwrap();
    let sm = mm.softmax(-1).unwrap();
    let ints = Tensor::full(&[3], 7.0, DType::I64, &dev).unwrap();
    assert_eq!(sum.device(), &dev);
    assert_eq!(
        mm.device(),
        &dev,
        "a fallback result comes back to the plugin's device"
    );
    assert_eq!(sm.device(), &dev);

    assert_eq!(add_f32() - before.0, 0, "add is implemented by the plugin");
    assert_eq!(count("matmul") - before.1, 1);
    assert_eq!(count("softmax") - before.2, 1);
    assert_eq!(count("fill") - before.3, 1, "fill on i64 is not listed");
    assert!(
        count_of(OpId::Fill, DType::I64, FallbackReason::Unlisted) >= 1,
        "{:?}",
        fallback_report()
    );

    let want = a.matmul(&b).unwrap();
    assert_eq!(mm.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    assert_eq!(
        sm.to_vec::<f32>().unwrap(),
        want.softmax(-1).unwrap().to_vec::<f32>().unwrap()
    );
    assert_eq!(ints.to_vec::<i64>().unwrap(), vec![7, 7, 7]);
    assert_eq!(
        sum.to_vec::<f32>().unwrap(),
        a.add(&a).unwrap().to_vec::<f32>().unwrap()
    );
}

#[test]
fn strided_views_on_a_plugin_without_copy_for_their_dtype_still_read_back() {
    let (_dir, dev) = partial();
    let v: Vec<f64> = (0..12).map(f64::from).collect();
    let x = Tensor::from_slice(&v, &[3, 4], &dev).unwrap();
    let t = x.t().unwrap();
    // copy on f64 is not listed: to_vec gathers on the CPU.
    assert_eq!(
        t.to_vec::<f64>().unwrap(),
        vec![0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]
    );
}

/// Calls of `op` on `dtype` that fell back from `partial` for `reason`.
fn count_of(op: OpId, dtype: DType, reason: FallbackReason) -> u64 {
    fallback_report()
        .into_iter()
        .filter(|f| f.backend == "partial" && f.op == op && f.dtype == dtype && f.reason == reason)
        .map(|f| f.count)
        .sum()
}

#[test]
fn fallbacks_are_counted_per_dtype_and_tell_unlisted_from_unsupported() {
    use FallbackReason::{Unlisted, Unsupported};
    let (_dir, dev) = partial();
    assert!(
        dev.supports(OpId::Mul, DType::F64),
        "the fixture lists mul on f64"
    );
    assert!(!dev.supports(OpId::Add, DType::F64));
    let v: Vec<f64> = (0..6).map(f64::from).collect();
    let x = Tensor::from_slice(&v, &[2, 3], &dev).unwrap();
    let f = Tensor::full(&[2, 3], 1.5, DType::F32, &dev).unwrap();

    let before = [
        count_of(OpId::Mul, DType::F64, Unsupported),
        count_of(OpId::Mul, DType::F64, Unlisted),
        count_of(OpId::Add, DType::F64, Unlisted),
        count_of(OpId::Add, DType::F32, Unlisted),
        count_of(OpId::Add, DType::F32, Unsupported),
    ];
    let prod = x.mul(&x).unwrap();
    let sum = x.add(&x).unwrap();
    let sum32 = f.add(&f).unwrap();
    let after = [
        count_of(OpId::Mul, DType::F64, Unsupported),
        count_of(OpId::Mul, DType::F64, Unlisted),
        count_of(OpId::Add, DType::F64, Unlisted),
        count_of(OpId::Add, DType::F32, Unlisted),
        count_of(OpId::Add, DType::F32, Unsupported),
    ];
    let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(
        delta,
        [1, 0, 1, 0, 0],
        "mul f64 listed but refused, add f64 unlisted, add f32 run by the plugin"
    );
    assert_eq!(
        prod.to_vec::<f64>().unwrap(),
        vec![0., 1., 4., 9., 16., 25.]
    );
    assert_eq!(sum.to_vec::<f64>().unwrap(), vec![0., 2., 4., 6., 8., 10.]);
    assert_eq!(sum32.to_vec::<f32>().unwrap(), vec![3.0; 6]);

    // The old view sums over dtypes and reasons.
    let report_add: u64 = fallback_report()
        .iter()
        .filter(|f| f.backend == "partial" && f.op == OpId::Add)
        .map(|f| f.count)
        .sum();
    assert_eq!(count("add"), report_add);
    let line = fallback_report()
        .into_iter()
        .find(|f| f.backend == "partial" && f.op == OpId::Mul && f.dtype == DType::F64)
        .expect("mul f64 is reported")
        .to_string();
    assert!(
        line.starts_with("mul f64 x") && line.ends_with("(partial, unsupported)"),
        "{line}"
    );
    assert_eq!(Unlisted.name(), "unlisted");
    assert_eq!(Unsupported.name(), "unsupported");
}

#[test]
fn a_strided_output_of_a_fallback_is_written_without_the_plugins_copy() {
    // partial has copy on f32 only: the channels-last (strided) outputs of
    // f64 and i64 ops that fall back are written through the host. (maximum:
    // no other test here counts its fallbacks, which are process-wide.)
    let (_dir, dev) = partial();
    for dtype in [DType::F64, DType::I64] {
        let cpu = Tensor::rand_uniform(&[2, 3, 4, 5], -5.0, 5.0, 7, DType::F64, &Device::cpu())
            .unwrap()
            .cast(dtype)
            .unwrap();
        let want = cpu.to_channels_last().unwrap().maximum(&cpu).unwrap();
        let x = cpu.to(&dev).unwrap();
        let cl = x.to_channels_last().unwrap();
        assert!(cl.is_channels_last(), "{dtype}");
        let got = cl.maximum(&x).unwrap();
        assert_eq!(got.device(), &dev);
        assert_eq!(
            got.to(&Device::cpu())
                .unwrap()
                .cast(DType::F64)
                .unwrap()
                .to_vec::<f64>()
                .unwrap(),
            want.cast(DType::F64).unwrap().to_vec::<f64>().unwrap(),
            "{dtype}"
        );
    }
}

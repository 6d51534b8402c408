//! Checkpoints: safetensors round trips bit for bit, metadata, typed errors
//! for corrupt files and mismatched expectations, and files written by the
//! Python `safetensors` package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sunrise::checkpoint::{self, CheckpointError};
use sunrise::{DType, Device, Tensor};

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "sunrise-ckpt-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn cpu() -> Device {
    Device::cpu()
}

/// Bit patterns compared exactly (so NaN payloads and -0.0 count).
fn bits(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::F64 => t
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect(),
        DType::I64 => t
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|&x| x as u64)
            .collect(),
        DType::U8 => t
            .to_vec::<u8>()
            .unwrap()
            .iter()
            .map(|&x| x as u64)
            .collect(),
    }
}

fn sample_tensors() -> Vec<(String, Tensor)> {
    let d = cpu();
    let nan_payload = f32::from_bits(0x7fc0_1234);
    let f = Tensor::from_slice(
        &[
            1.5f32,
            -0.0,
            nan_payload,
            f32::INFINITY,
            f32::MIN_POSITIVE / 2.0,
            3.0,
        ],
        &[2, 3],
        &d,
    )
    .unwrap();
    let g = Tensor::from_slice(&[std::f64::consts::PI, -1e-310, f64::NAN], &[3], &d).unwrap();
    let i = Tensor::from_slice(&[i64::MIN, -1, 0, i64::MAX], &[2, 2], &d).unwrap();
    let u = Tensor::from_slice(&[0u8, 7, 255], &[3], &d).unwrap();
    // Non-contiguous: a transposed, sliced view.
    let base: Vec<f32> = (0..24).map(|k| k as f32 * 0.25 - 1.0).collect();
    let v = Tensor::from_slice(&base, &[4, 6], &d)
        .unwrap()
        .t()
        .unwrap()
        .slice(0, 1, 6, 2)
        .unwrap();
    assert!(!v.is_contiguous());
    let s = Tensor::scalar(42i64, &d).unwrap();
    vec![
        ("features.0.weight".to_string(), f),
        ("head.f64".to_string(), g),
        ("bn.num_batches_tracked".to_string(), s),
        ("idx".to_string(), i),
        ("mask".to_string(), u),
        ("view".to_string(), v),
    ]
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = temp_dir("rt");
    let path = dir.join("model.safetensors");
    let tensors = sample_tensors();
    checkpoint::save(&path, &tensors).unwrap();
    let loaded = checkpoint::load(&path, &cpu()).unwrap();
    let mut want = tensors.clone();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(loaded.len(), want.len());
    for ((n1, t1), (n2, t2)) in want.iter().zip(&loaded) {
        assert_eq!(n1, n2);
        assert_eq!((t1.shape(), t1.dtype()), (t2.shape(), t2.dtype()), "{n1}");
        assert_eq!(bits(t1), bits(t2), "{n1}");
    }
    // No temporary file left behind; saving again replaces the file.
    checkpoint::save(&path, &tensors[..1]).unwrap();
    assert_eq!(checkpoint::load(&path, &cpu()).unwrap().len(), 1);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
}

#[test]
fn metadata_round_trip() {
    let dir = temp_dir("meta");
    let path = dir.join("m.safetensors");
    let meta: BTreeMap<String, String> = [
        ("model", "Sequential(Conv2d(1, 8, 3), ReLU)"),
        ("seed", "7"),
        ("unicode", "αβγ \"quoted\""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    checkpoint::save_with_metadata(&path, &sample_tensors(), &meta).unwrap();
    assert_eq!(checkpoint::load_metadata(&path).unwrap(), meta);
    checkpoint::save(&path, &sample_tensors()).unwrap();
    assert!(checkpoint::load_metadata(&path).unwrap().is_empty());
}

#[test]
fn truncated_and_garbage_files_are_corrupt() {
    let dir = temp_dir("corrupt");
    let path = dir.join("good.safetensors");
    checkpoint::save(&path, &sample_tensors()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cuts = [0, 5, 8, 20, bytes.len() / 2, bytes.len() - 1];
    for cut in cuts {
        let p = dir.join(format!("cut{cut}.safetensors"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = checkpoint::load(&p, &cpu()).unwrap_err();
        assert!(
            matches!(e, CheckpointError::Corrupt { .. }),
            "cut {cut}: {e:?}"
        );
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert!(matches!(
            checkpoint::load_metadata(&p),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
}

#[test]
fn garbage_and_inconsistent_files_are_corrupt() {
    let dir = temp_dir("garbage");
    let path = dir.join("good.safetensors");
    checkpoint::save(&path, &sample_tensors()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Trailing bytes.
    let p = dir.join("long.safetensors");
    let mut long = bytes.clone();
    long.push(0);
    std::fs::write(&p, &long).unwrap();
    assert!(matches!(
        checkpoint::load(&p, &cpu()),
        Err(CheckpointError::Corrupt { .. })
    ));
    // Pseudo-random garbage, including a plausible small header length.
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for header_len in [None, Some(100u64)] {
        if let Some(n) = header_len {
            garbage[..8].copy_from_slice(&n.to_le_bytes());
        }
        let p = dir.join("garbage.safetensors");
        std::fs::write(&p, &garbage).unwrap();
        let e = checkpoint::load(&p, &cpu()).unwrap_err();
        assert!(matches!(e, CheckpointError::Corrupt { .. }), "{e:?}");
    }
    // Data offsets that lie.
    let p = dir.join("offsets.safetensors");
    let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}"#;
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(&[0; 12]);
    std::fs::write(&p, &f).unwrap();
    assert!(matches!(
        checkpoint::load(&p, &cpu()),
        Err(CheckpointError::Corrupt { .. })
    ));
    // A missing file is an I/O error.
    let e = checkpoint::load(dir.join("absent"), &cpu()).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }));
}

fn zeros_like_all(ts: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    ts.iter()
        .map(|(n, t)| {
            (
                n.clone(),
                Tensor::zeros(t.shape(), t.dtype(), &cpu()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn load_into_copies_in_place() {
    let dir = temp_dir("into");
    let path = dir.join("c.safetensors");
    let src = sample_tensors();
    checkpoint::save(&path, &src).unwrap();
    let dst = zeros_like_all(&src);
    let alias = dst[0].1.clone();
    checkpoint::load_into(&path, &dst).unwrap();
    for ((n, s), (_, d)) in src.iter().zip(&dst) {
        assert_eq!(bits(s), bits(d), "{n}");
    }
    // In place: clones see the new values.
    assert_eq!(bits(&alias), bits(&src[0].1));
    // A non-contiguous destination view is written through.
    let big = Tensor::zeros(&[3, 4], DType::F32, &cpu()).unwrap();
    let view = big.t().unwrap().slice(0, 0, 3, 1).unwrap(); // [3, 3] view
    let v_src = vec![(
        "v".to_string(),
        Tensor::from_slice(&[1.0f32, 2., 3., 4., 5., 6., 7., 8., 9.], &[3, 3], &cpu()).unwrap(),
    )];
    let p2 = dir.join("v.safetensors");
    checkpoint::save(&p2, &v_src).unwrap();
    checkpoint::load_into(&p2, &[("v".to_string(), view.clone())]).unwrap();
    assert_eq!(bits(&view), bits(&v_src[0].1));
    assert_eq!(
        big.to_vec::<f32>().unwrap(),
        [1., 4., 7., 0., 2., 5., 8., 0., 3., 6., 9., 0.]
    );
}

#[test]
fn load_into_reports_missing_and_unexpected_names() {
    let dir = temp_dir("mismatch");
    let path = dir.join("c.safetensors");
    let src = sample_tensors();
    checkpoint::save(&path, &src).unwrap();

    // Missing: an extra expected name.
    let mut dst = zeros_like_all(&src);
    dst.push((
        "fc.bias".into(),
        Tensor::zeros(&[2], DType::F32, &cpu()).unwrap(),
    ));
    match checkpoint::load_into(&path, &dst).unwrap_err() {
        CheckpointError::Missing { names, path: p } => {
            assert_eq!((names, p), (vec!["fc.bias".to_string()], path.clone()));
        }
        e => panic!("{e:?}"),
    }
    assert!(dst.iter().all(|(_, t)| bits(t).iter().all(|&b| b == 0)));

    // Unexpected: an expected name dropped.
    let dst = zeros_like_all(&src[1..]);
    match checkpoint::load_into(&path, &dst).unwrap_err() {
        CheckpointError::Unexpected { names, .. } => assert_eq!(names, ["features.0.weight"]),
        e => panic!("{e:?}"),
    }
    // Non-strict: loads what matches and reports the rest.
    let mut dst = zeros_like_all(&src[1..]);
    dst.push((
        "new".into(),
        Tensor::zeros(&[1], DType::F32, &cpu()).unwrap(),
    ));
    let r = checkpoint::load_into_with(&path, &dst, false).unwrap();
    assert_eq!(r.missing, ["new"]);
    assert_eq!(r.unexpected, ["features.0.weight"]);
    assert_eq!(r.loaded.len(), src.len() - 1);
    assert_eq!(bits(&dst[0].1), bits(&src[1].1));
}

#[test]
fn load_into_rejects_shape_and_dtype_mismatches() {
    let dir = temp_dir("shape");
    let path = dir.join("c.safetensors");
    let src = sample_tensors();
    checkpoint::save(&path, &src).unwrap();
    // Shape.
    let mut dst = zeros_like_all(&src);
    dst[0].1 = Tensor::zeros(&[3, 2], DType::F32, &cpu()).unwrap();
    match checkpoint::load_into(&path, &dst).unwrap_err() {
        CheckpointError::Shape {
            name,
            expected,
            found,
            ..
        } => assert_eq!(
            (name.as_str(), expected, found),
            ("features.0.weight", vec![3, 2], vec![2, 3])
        ),
        e => panic!("{e:?}"),
    }
    assert!(dst.iter().all(|(_, t)| bits(t).iter().all(|&b| b == 0)));
    // Shape mismatch is an error even when not strict.
    assert!(matches!(
        checkpoint::load_into_with(&path, &dst, false),
        Err(CheckpointError::Shape { .. })
    ));

    // DType.
    let mut dst = zeros_like_all(&src);
    dst[1].1 = Tensor::zeros(&[3], DType::F32, &cpu()).unwrap();
    match checkpoint::load_into(&path, &dst).unwrap_err() {
        CheckpointError::DType {
            name,
            expected,
            found,
            ..
        } => assert_eq!(
            (name.as_str(), expected, found),
            ("head.f64", DType::F32, DType::F64)
        ),
        e => panic!("{e:?}"),
    }
}

#[test]
fn invalid_names_are_rejected() {
    let dir = temp_dir("names");
    let t = Tensor::zeros(&[1], DType::F32, &cpu()).unwrap();
    let dup = vec![("a".to_string(), t.clone()), ("a".to_string(), t.clone())];
    let e = checkpoint::save(dir.join("d.safetensors"), &dup).unwrap_err();
    assert!(matches!(e, CheckpointError::InvalidName { .. }), "{e:?}");
    let reserved = vec![("__metadata__".to_string(), t)];
    assert!(matches!(
        checkpoint::save(dir.join("r.safetensors"), &reserved),
        Err(CheckpointError::InvalidName { .. })
    ));
    assert!(!dir.join("d.safetensors").exists());
    // A directory that does not exist: an I/O error, no stray files.
    let e = checkpoint::save(dir.join("no/such/dir/x.safetensors"), &dup[..1]).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }), "{e:?}");
}

#[test]
fn reads_files_written_by_python_safetensors() {
    let path = fixture("python_numpy.safetensors");
    let loaded = checkpoint::load(&path, &cpu()).unwrap();
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "1.bias",
            "1.num_batches_tracked",
            "1.running_mean",
            "1.running_var",
            "1.weight",
            "extra.f64",
            "extra.u8"
        ]
    );
    let get = |n: &str| loaded.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let w = get("0.weight");
    assert_eq!(w.shape(), &[3, 2]);
    assert_eq!(
        w.to_vec::<f32>().unwrap(),
        [-0.625, -0.375, -0.125, 0.125, 0.375, 0.625]
    );
    let b = get("0.bias").to_vec::<f32>().unwrap();
    assert_eq!(b[0], 0.1f32);
    assert_eq!(b[1].to_bits(), (-0.0f32).to_bits());
    assert_eq!(b[2], 3.0e38f32);
    let nbt = get("1.num_batches_tracked");
    assert_eq!((nbt.shape(), nbt.dtype()), (&[][..], DType::I64));
    assert_eq!(nbt.to_vec::<i64>().unwrap(), [7]);
    assert_eq!(
        get("extra.f64").to_vec::<f64>().unwrap(),
        [1.0 / 3.0, -2.0, 1e-300, std::f64::consts::PI]
    );
    assert_eq!(get("extra.u8").to_vec::<u8>().unwrap(), [0, 1, 254, 255]);
    let meta = checkpoint::load_metadata(&path).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    assert_eq!(meta.get("model").map(String::as_str), Some("fixture"));

    // Saving what we loaded and loading again gives the same bits.
    let dir = temp_dir("py");
    let again = dir.join("again.safetensors");
    checkpoint::save_with_metadata(&again, &loaded, &meta).unwrap();
    let reloaded = checkpoint::load(&again, &cpu()).unwrap();
    for ((n, a), (_, b)) in loaded.iter().zip(&reloaded) {
        assert_eq!(bits(a), bits(b), "{n}");
    }

    // float16 is reported, naming the tensor.
    match checkpoint::load(fixture("python_f16.safetensors"), &cpu()).unwrap_err() {
        CheckpointError::UnsupportedDType { name, dtype, .. } => {
            assert_eq!((name.as_str(), dtype.as_str()), ("half", "F16"));
        }
        e => panic!("{e:?}"),
    }
}

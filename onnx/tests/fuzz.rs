//! The loader and the runner against damaged and hostile files: models
//! built here (a small CNN and an MLP) and, where the ONNX test data is
//! installed (scripts/setup-onnx-tests.sh), the `light` models, each
//! mutated many times by a seeded generator (bytes flipped, runs
//! overwritten with 0xff, truncations, duplicated spans). Every mutant must
//! load or be refused with an error, and every mutant that loads must run
//! or be refused with an error: no panic. Mutants declaring inputs of more
//! than 2^20 elements are loaded but not run.

use std::panic::{catch_unwind, AssertUnwindSafe};

use prost::Message;
use sunrise::{DType, Device, Tensor};
use sunrise_onnx::build::{floats, ints, ints_attr, model, node, value};
use sunrise_onnx::proto::{GraphProto, ModelProto, TensorProto};
use sunrise_onnx::{Dim, Model};

fn weight(name: &str, dims: &[i64], seed: u32) -> TensorProto {
    let n: i64 = dims.iter().product();
    let data = (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) % 1000)
        .map(|v| v as f32 / 1000.0 - 0.5)
        .collect();
    floats(name, dims, data)
}

/// Conv-Relu-MaxPool-Flatten-Gemm-Softmax on [1, 2, 6, 6].
fn cnn() -> ModelProto {
    let graph = GraphProto {
        name: Some("cnn".into()),
        node: vec![
            node(
                "Conv",
                &["x", "w", "b"],
                "c",
                vec![ints_attr("pads", &[1, 1, 1, 1])],
            ),
            node("Relu", &["c"], "r", vec![]),
            node(
                "MaxPool",
                &["r"],
                "p",
                vec![
                    ints_attr("kernel_shape", &[2, 2]),
                    ints_attr("strides", &[2, 2]),
                ],
            ),
            node("Flatten", &["p"], "f", vec![]),
            node("Gemm", &["f", "fc", "fb"], "g", vec![]),
            node("Softmax", &["g"], "y", vec![]),
        ],
        initializer: vec![
            weight("w", &[3, 2, 3, 3], 1),
            weight("b", &[3], 2),
            weight("fc", &[27, 4], 3),
            weight("fb", &[4], 4),
        ],
        input: vec![value("x", &[1, 2, 6, 6])],
        output: vec![value("y", &[1, 4])],
        ..Default::default()
    };
    model(graph, 13)
}

/// MatMul-Add-Relu-Reshape-ReduceMean on [2, 8].
fn mlp() -> ModelProto {
    let shape = ints("shape", &[3], vec![2, 2, -1]);
    let graph = GraphProto {
        name: Some("mlp".into()),
        node: vec![
            node("MatMul", &["x", "w"], "m", vec![]),
            node("Add", &["m", "b"], "a", vec![]),
            node("Relu", &["a"], "r", vec![]),
            node("Reshape", &["r", "shape"], "s", vec![]),
            node("ReduceMean", &["s"], "y", vec![ints_attr("axes", &[2])]),
        ],
        initializer: vec![weight("w", &[8, 6], 5), weight("b", &[6], 6), shape],
        input: vec![value("x", &[2, 8])],
        output: vec![value("y", &[2, 2, 1])],
        ..Default::default()
    };
    model(graph, 13)
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(src: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = src.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(5) {
            0 => b[i] ^= 1 << rng.below(8),
            1 => b[i] = rng.next() as u8,
            2 => {
                let end = (i + 1 + rng.below(8)).min(b.len());
                b[i..end].fill(0xff);
            }
            3 => b.truncate(i),
            _ => {
                let end = (i + 1 + rng.below(32)).min(b.len());
                let span = b[i..end].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, span);
            }
        }
    }
    b
}

/// Loads and (where the inputs are small) runs `bytes`; the number of
/// panics (0 or 1).
fn try_one(bytes: &[u8]) -> (bool, bool, bool) {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let Ok(m) = Model::from_bytes(bytes, None, "mutant") else {
            return (false, false);
        };
        let mut inputs = Vec::new();
        for v in m.inputs() {
            let shape: Option<Vec<usize>> = v.dims.as_ref().map(|d| {
                d.iter()
                    .map(|x| if let Dim::Fixed(n) = x { *n } else { 1 })
                    .collect()
            });
            let Some(shape) = shape else {
                return (true, false);
            };
            if shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_none_or(|n| n > 1 << 20)
            {
                return (true, false);
            }
            let dt = v.dtype.unwrap_or(DType::F32);
            let t = match dt {
                DType::F32 | DType::F64 => {
                    Tensor::rand_uniform(&shape, -1.0, 1.0, 7, dt, &Device::cpu())
                }
                _ => Tensor::zeros(&shape, dt, &Device::cpu()),
            };
            let Ok(t) = t else { return (true, false) };
            inputs.push((v.name.clone(), t));
        }
        let feed: Vec<(&str, Tensor)> = inputs
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        (true, m.run(&feed).is_ok())
    }));
    match r {
        Ok((loaded, ran)) => (loaded, ran, false),
        Err(_) => (false, false, true),
    }
}

#[test]
fn mutated_models_never_panic() {
    let mut corpus: Vec<(String, Vec<u8>)> = vec![
        ("cnn".into(), cnn().encode_to_vec()),
        ("mlp".into(), mlp().encode_to_vec()),
    ];
    let light = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/onnx-data/onnx/backend/test/data/light");
    for name in ["light_squeezenet.onnx", "light_bvlc_alexnet.onnx"] {
        if let Ok(b) = std::fs::read(light.join(name)) {
            corpus.push((name.into(), b));
        }
    }
    // The unmutated models load and run.
    for (name, bytes) in &corpus[..2] {
        let (loaded, ran, panicked) = try_one(bytes);
        assert!(loaded && ran && !panicked, "{name} must load and run");
    }
    let start = std::time::Instant::now();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut total, mut loaded, mut ran) = (0, 0, 0);
    let mut panics = Vec::new();
    for (name, bytes) in &corpus {
        let rounds = if bytes.len() > 10_000 { 150 } else { 1500 };
        for i in 0..rounds {
            let m = mutate(bytes, &mut rng);
            let (l, r, p) = try_one(&m);
            total += 1;
            loaded += l as usize;
            ran += r as usize;
            if p {
                panics.push(format!("{name} mutant {i}"));
            }
        }
    }
    println!(
        "{total} mutants of {} models in {:.1} s: {loaded} loaded, {ran} ran, {} panicked",
        corpus.len(),
        start.elapsed().as_secs_f64(),
        panics.len()
    );
    assert!(panics.is_empty(), "panics: {panics:?}");
}

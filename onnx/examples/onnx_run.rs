//! Builds a small ONNX model (Gemm, Relu, Gemm, Softmax) in code, writes it
//! to a file, loads it back with `sunrise_onnx::Model::load`, describes it
//! and runs it on the default device.
//!
//! ```sh
//! cargo run -p sunrise-onnx --example onnx_run            # the built-in model
//! cargo run -p sunrise-onnx --example onnx_run model.onnx # any model, random inputs
//! ```

use prost::Message;
use sunrise::{DType, Tensor};
use sunrise_onnx::build::{floats, model, node, value};
use sunrise_onnx::proto::{GraphProto, ModelProto};
use sunrise_onnx::{Dim, Model};

fn weight(name: &str, dims: &[i64]) -> sunrise_onnx::proto::TensorProto {
    let n: i64 = dims.iter().product();
    floats(
        name,
        dims,
        (0..n)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 10.0)
            .collect(),
    )
}

fn built_in() -> ModelProto {
    let mut m = model(
        GraphProto {
            name: Some("mlp".into()),
            node: vec![
                node("Gemm", &["x", "w1", "b1"], "h", vec![]),
                node("Relu", &["h"], "r", vec![]),
                node("Gemm", &["r", "w2", "b2"], "logits", vec![]),
                node("Softmax", &["logits"], "probs", vec![]),
            ],
            initializer: vec![
                weight("w1", &[4, 8]),
                weight("b1", &[8]),
                weight("w2", &[8, 3]),
                weight("b2", &[3]),
            ],
            input: vec![value("x", &[2, 4])],
            output: vec![value("probs", &[2, 3])],
            ..Default::default()
        },
        17,
    );
    m.producer_name = Some("sunrise example".into());
    m
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let p = std::env::temp_dir().join("sunrise-example-mlp.onnx");
            std::fs::write(&p, built_in().encode_to_vec())?;
            p
        }
    };
    let model = Model::load(&path)?;
    let info = model.info();
    println!(
        "{}: opset {}, ops {:?}",
        path.display(),
        info.opset,
        info.ops
    );
    let device = sunrise::registry::registry().device("auto")?;
    let mut inputs = Vec::new();
    for (i, v) in model.inputs().iter().enumerate() {
        let shape: Vec<usize> = v
            .dims
            .iter()
            .flatten()
            .map(|d| if let Dim::Fixed(n) = d { *n } else { 1 })
            .collect();
        let dt = v.dtype.unwrap_or(DType::F32);
        inputs.push((
            v.name.as_str(),
            Tensor::rand_uniform(&shape, -1.0, 1.0, i as u64, dt, &device)?,
        ));
    }
    for (name, y) in model.run(&inputs)? {
        println!(
            "{name}: {:?} {:?}",
            y.shape(),
            y.cast(DType::F64)?.to_vec::<f64>()?
        );
    }
    Ok(())
}

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
use sunrise_onnx::proto::{
    tensor_proto::DataType, tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use sunrise_onnx::{Dim, Model};

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

fn weight(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: (0..n)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 10.0)
            .collect(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: Some(output.into()),
        ..Default::default()
    }
}

fn built_in() -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("sunrise example".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            name: Some("mlp".into()),
            node: vec![
                node("Gemm", &["x", "w1", "b1"], "h"),
                node("Relu", &["h"], "r"),
                node("Gemm", &["r", "w2", "b2"], "logits"),
                node("Softmax", &["logits"], "probs"),
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
        }),
        ..Default::default()
    }
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

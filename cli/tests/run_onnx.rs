//! `sunrise run` end to end on a model written by the test: `--info`,
//! inputs from `.npy`, outputs to `.npy` that match the library's own run,
//! random inputs, and clear failures (corrupt file, wrong input name,
//! input of the wrong shape) without a panic.

mod support;

use prost::Message;
use sunrise::{Device, Tensor};
use sunrise_onnx::build::{floats, model, node, value};
use sunrise_onnx::proto::GraphProto;
use support::{sunrise, text};

/// `probs = softmax(relu(x w + b))`, x [2, 3]; output name with a slash.
fn model_bytes() -> Vec<u8> {
    let w: Vec<f32> = (0..12).map(|i| i as f32 / 10.0 - 0.5).collect();
    model(
        GraphProto {
            node: vec![
                node("MatMul", &["x", "w"], "m", vec![]),
                node("Add", &["m", "b"], "a", vec![]),
                node("Relu", &["a"], "r", vec![]),
                node("Softmax", &["r"], "out/probs", vec![]),
            ],
            initializer: vec![
                floats("w", &[3, 4], w),
                floats("b", &[4], vec![0.1, -0.2, 0.3, 0.0]),
            ],
            input: vec![value("x", &[2, 3])],
            output: vec![value("out/probs", &[2, 4])],
            ..Default::default()
        },
        13,
    )
    .encode_to_vec()
}

#[test]
fn run_writes_outputs_that_match_the_library() {
    let dir = std::env::temp_dir().join(format!("sunrise-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.onnx");
    std::fs::write(&path, model_bytes()).unwrap();
    let m = path.to_str().unwrap();

    let o = sunrise(&["run", "--info", m], &[]);
    assert!(o.status.success(), "{}", text(&o));
    for want in [
        "opset 13",
        "x f32 [2, 3]",
        "out/probs f32 [2, 4]",
        "MatMul",
        "every op is supported",
    ] {
        assert!(text(&o).contains(want), "{want}: {}", text(&o));
    }

    let x = Tensor::from_slice(
        &[0.5f32, -1.0, 2.0, 0.0, 1.5, -0.5],
        &[2, 3],
        &Device::cpu(),
    )
    .unwrap();
    let xp = dir.join("x.npy");
    sunrise_onnx::npy::write(&x, &xp).unwrap();
    let out = dir.join("out");
    let input = format!("x={}", xp.display());
    let o = sunrise(
        &[
            "run",
            m,
            "--input",
            &input,
            "--output-dir",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let got = sunrise_onnx::npy::read(&out.join("out_probs.npy"), &Device::cpu()).unwrap();
    let lib = sunrise_onnx::Model::load(&path)
        .unwrap()
        .run(&[("x", x)])
        .unwrap();
    assert_eq!(got.shape(), &[2, 4]);
    assert_eq!(
        got.to_vec::<f32>().unwrap(),
        lib[0].1.to_vec::<f32>().unwrap()
    );

    // No input given: random, said so.
    let o = sunrise(&["run", m], &[]);
    assert!(
        o.status.success() && text(&o).contains("random"),
        "{}",
        text(&o)
    );

    // Failures are errors with a reason, never a panic.
    std::fs::write(dir.join("bad.onnx"), &model_bytes()[..40]).unwrap();
    let bad = dir.join("bad.onnx");
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec!["run", bad.to_str().unwrap()],
            "not a valid ONNX protobuf message",
        ),
        (vec!["run", m, "--input", "y=nothing.npy"], "nothing.npy"),
        (vec!["run", m, "--input", "z"], "expected NAME=FILE.npy"),
    ];
    for (args, want) in cases {
        let o = sunrise(&args, &[]);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(want) && !text(&o).contains("panicked"),
            "{args:?}: {}",
            text(&o)
        );
    }
    let wrong = Tensor::from_slice(&[1.0f32; 4], &[4], &Device::cpu()).unwrap();
    let wp = dir.join("wrong.npy");
    sunrise_onnx::npy::write(&wrong, &wp).unwrap();
    let o = sunrise(&["run", m, "--input", &format!("x={}", wp.display())], &[]);
    assert!(
        !o.status.success() && text(&o).contains("shape [4]"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

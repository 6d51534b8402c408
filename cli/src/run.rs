//! `sunrise run MODEL.onnx`: loads an ONNX model with `sunrise_onnx`, feeds
//! it `.npy` inputs (or random ones), runs it on the chosen device and
//! writes each output as `DIR/<output name>.npy`. `--info` prints what the
//! model is instead: inputs, outputs, opset, producer, the op histogram and
//! the ops this build does not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use sunrise::{DType, Device, Tensor};
use sunrise_onnx::{Model, ValueInfo};

/// Arguments of `sunrise run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The ONNX model file.
    pub model: PathBuf,
    /// An input, as NAME=FILE.npy (repeat for each input; inputs not given
    /// are filled with uniform random values in [-1, 1), symbolic dims as 1).
    #[arg(long = "input", value_name = "NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// Write each output to DIR/<output name>.npy (names made safe for a file name).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Describe the model (inputs, outputs, opset, op histogram, unsupported ops) and exit.
    #[arg(long)]
    pub info: bool,
    /// Random seed for generated inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `sunrise run`.
pub fn run(args: &RunArgs, request: &str) -> ExitCode {
    match go(args, request) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dims(v: &ValueInfo) -> String {
    match &v.dims {
        Some(d) => format!(
            "[{}]",
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "(rank unknown)".into(),
    }
}

fn describe(v: &ValueInfo) -> String {
    let dt = v.dtype.map_or_else(|| "?".to_string(), |d| d.to_string());
    format!("{} {dt} {}", v.name, dims(v))
}

fn print_info(model: &Model, path: &Path) {
    let info = model.info();
    println!("model: {}", path.display());
    println!(
        "  IR version {}, opset {}, producer {:?}",
        info.ir_version, info.opset, info.producer
    );
    let (n, elems) = info.initializers;
    println!("  initializers: {n} ({elems} elements)");
    println!("inputs:");
    for v in &info.inputs {
        println!("  {}", describe(v));
    }
    println!("outputs:");
    for v in &info.outputs {
        println!("  {}", describe(v));
    }
    println!("ops ({} nodes):", info.ops.values().sum::<usize>());
    for (op, count) in &info.ops {
        println!("  {op:<24} {count}");
    }
    if info.unsupported.is_empty() {
        println!("every op is supported");
    } else {
        println!(
            "not supported by this build: {}",
            info.unsupported.join(", ")
        );
    }
}

/// `name` made safe as a file name: anything but letters, digits, `-`,
/// `_` and `.` becomes `_`, and a leading `.` is replaced.
fn file_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

fn random_input(v: &ValueInfo, seed: u64, device: &Device) -> Result<Tensor, String> {
    let shape: Vec<usize> = match &v.dims {
        Some(d) => d
            .iter()
            .map(|x| match x {
                sunrise_onnx::Dim::Fixed(n) => *n,
                _ => 1,
            })
            .collect(),
        None => {
            return Err(format!(
                "input {:?} has no declared shape: give it with --input",
                v.name
            ))
        }
    };
    let dt = v.dtype.unwrap_or(DType::F32);
    let t = match dt {
        DType::F32 | DType::F64 => Tensor::rand_uniform(&shape, -1.0, 1.0, seed, dt, device),
        _ => Tensor::zeros(&shape, dt, device),
    };
    t.map_err(|e| e.to_string())
}

fn go(args: &RunArgs, request: &str) -> Result<(), String> {
    let t0 = Instant::now();
    let model = Model::load(&args.model).map_err(|e| e.to_string())?;
    let load = t0.elapsed();
    if args.info {
        print_info(&model, &args.model);
        return Ok(());
    }
    let device = sunrise::registry::registry()
        .device(request)
        .map_err(|e| e.to_string())?;
    let mut given = Vec::new();
    for spec in &args.inputs {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| format!("--input {spec:?}: expected NAME=FILE.npy"))?;
        let t = sunrise_onnx::npy::read(Path::new(file), &Device::cpu())
            .and_then(|t| Ok(t.to(&device)?))
            .map_err(|e| format!("--input {name}: {e}"))?;
        given.push((name.to_string(), t));
    }
    let mut inputs: Vec<(String, Tensor)> = Vec::new();
    for (i, v) in model.inputs().iter().enumerate() {
        if let Some(pos) = given.iter().position(|(n, _)| n == &v.name) {
            inputs.push(given.swap_remove(pos));
        } else {
            let t = random_input(v, args.seed + i as u64, &device)?;
            println!(
                "input {} {:?}: random (no --input given)",
                v.name,
                t.shape()
            );
            inputs.push((v.name.clone(), t));
        }
    }
    inputs.append(&mut given);
    let feed: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let t1 = Instant::now();
    let outputs = model.run(&feed).map_err(|e| e.to_string())?;
    let ran = t1.elapsed();
    println!(
        "ran {} on {device}: load {:.1} ms, run {:.1} ms",
        args.model.display(),
        load.as_secs_f64() * 1e3,
        ran.as_secs_f64() * 1e3
    );
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for (name, t) in &outputs {
        let host = t.to(&Device::cpu()).map_err(|e| e.to_string())?;
        print!("output {name} {} {:?}", host.dtype(), host.shape());
        if let Ok(v) = host.cast(DType::F64).and_then(|c| c.to_vec::<f64>()) {
            let shown: Vec<String> = v.iter().take(6).map(|x| format!("{x:.5}")).collect();
            let more = if v.len() > 6 { ", ..." } else { "" };
            print!(" [{}{more}]", shown.join(", "));
        }
        println!();
        if let Some(dir) = &args.output_dir {
            let path = dir.join(format!("{}.npy", file_name(name)));
            sunrise_onnx::npy::write(&host, &path).map_err(|e| e.to_string())?;
            println!("  wrote {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn output_names_become_safe_file_names() {
        assert_eq!(file_name("logits"), "logits");
        assert_eq!(file_name("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(file_name("a/b:c"), "a_b_c");
        assert_eq!(file_name(""), "_");
        assert_eq!(file_name(".hidden"), "_.hidden");
    }
}

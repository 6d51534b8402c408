//! Conformance on a GPU: the library's suite (`sunrise::conformance`, the
//! same one `sunrise conformance --device cuda` runs) on `cuda:0`: every
//! (op, dtype) pair the CUDA plugin lists, on seeded random, strided and
//! broadcast inputs, forward and backward, against the CPU backend linked
//! into the core within a tolerance per op family, plus buffer round trips
//! and the ABI's error paths. Then the main job, training the digits CNN, on
//! the GPU against the CPU.
//!
//! Without a usable GPU the plugin's probe says why, and each test prints
//! `skipped: <reason>` and passes: CI has no GPU. With
//! `SUNRISE_CUDA_REQUIRE=1` (CI's run on the CPU emulator, tests/cuda-emu,
//! and scripts/gpu-check.sh) a skip is a failure instead.
//!
//! Finding the plugin: when `SUNRISE_BACKEND_PATH` is set (as
//! `gpu-check.sh` sets it), the core's normal discovery; otherwise the
//! plugin built from this tree (with cargo, as the other plugin tests do).

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use common::{TempDir, CUDA_PLUGIN};
use sunrise::conformance::{self, Options, Row};
use sunrise::plugin::{
    discover, discover_in, Outcome, PathOrigin, SearchPath, SkipKind, BACKEND_PATH_VAR,
};
use sunrise::{DType, Device};

// ---- the device --------------------------------------------------------------------

/// `cuda:0`, or why there is none (the plugin's probe says unusable).
fn cuda() -> Result<Device, String> {
    static CUDA: OnceLock<Result<Device, String>> = OnceLock::new();
    CUDA.get_or_init(find_cuda).clone()
}

fn find_cuda() -> Result<Device, String> {
    let (discovery, _dir) = if std::env::var_os(BACKEND_PATH_VAR).is_some() {
        (discover(), None)
    } else {
        let dir = TempDir::new("cuda-conformance");
        dir.copy_in(&common::cuda_plugin(), CUDA_PLUGIN);
        let d = discover_in(vec![SearchPath::new(dir.path(), PathOrigin::Env)]);
        (d, Some(dir))
    };
    let searched: Vec<String> = discovery
        .searched
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let cand = discovery
        .candidates
        .iter()
        .find(|c| c.path.file_name().is_some_and(|f| f == CUDA_PLUGIN))
        .unwrap_or_else(|| {
            panic!(
                "{CUDA_PLUGIN} was not found; searched: {}",
                searched.join(", ")
            )
        });
    match &cand.outcome {
        Outcome::Skipped(r) if r.kind == SkipKind::Unusable => return Err(r.to_string()),
        Outcome::Skipped(r) => panic!("{} could not be used: {r}", cand.path.display()),
        Outcome::Loaded { .. } => {}
    }
    let p = discovery
        .plugins
        .into_iter()
        .find(|p| p.name == "cuda")
        .expect("the loaded cuda plugin");
    println!("cuda plugin: {}", p.path.display());
    let dev = Device::from_backend(p.backend, 0, "cuda:0");
    let info = dev.backend().device_info(0).map_err(|e| e.to_string())?;
    println!(
        "cuda:0: {} (compute {:?}), {:?}, {:?}",
        info.name, info.compute_capability, info.driver_version, info.library_versions
    );
    for (k, v) in &info.attributes {
        if k == "tf32" && v == "on" {
            panic!("TF32 is on (SUNRISE_CUDA_TF32): conformance compares strict f32; unset it");
        }
    }
    Ok(dev)
}

/// The device, or `None` after printing why the test is skipped. With
/// `SUNRISE_CUDA_REQUIRE=1` (CI's run on the CPU emulator, tests/cuda-emu,
/// and scripts/gpu-check.sh) a skip is a failure instead.
fn cuda_or_skip() -> Option<Device> {
    match cuda() {
        Ok(d) => Some(d),
        Err(reason) => {
            assert!(
                std::env::var_os("SUNRISE_CUDA_REQUIRE").is_none(),
                "SUNRISE_CUDA_REQUIRE is set but cuda:0 is unusable: {reason}"
            );
            println!("skipped: {reason}");
            None
        }
    }
}

// ---- the op suite -----------------------------------------------------------------

#[test]
fn every_listed_op_and_dtype_matches_the_cpu_backend() {
    let Some(dev) = cuda_or_skip() else {
        return;
    };
    let opts = Options {
        training: false,
        ..Options::default()
    };
    let report = conformance::run(&dev, &opts, &mut |row| match row {
        Row::Pair(p) => println!("  {}", p.line()),
        Row::Check(c) => println!("  {}", c.line()),
    });
    println!("not listed: {}", report.unlisted.join(", "));
    println!("{} ({:.1} s)", report.summary(), report.seconds);
    assert!(
        report.pairs.len() > 100,
        "the plugin lists only {} pairs",
        report.pairs.len()
    );
    let failures: Vec<&str> = report.failures().collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---- the main job ------------------------------------------------------------------

#[test]
fn training_the_digits_cnn_on_the_gpu_reaches_the_cpu_accuracy_band() {
    use sunrise::data::{digits, Normalization};
    use sunrise::train::{fit, ModelSpec, TrainOptions};
    let Some(dev) = cuda_or_skip() else {
        return;
    };
    // The split and normalisation `sunrise train` uses.
    let all = digits().expect("the embedded digits");
    let (mut tr, mut te) = all.split_stratified(0.2, 7).expect("split");
    let norm = Normalization::new(0.0, 16.0).expect("normalisation");
    tr.normalize(&norm);
    te.normalize(&norm);
    let spec = ModelSpec::for_dataset(&tr, norm).expect("model spec");
    let opts = TrainOptions::default();
    let run = |d: &Device| {
        let t = Instant::now();
        let mut init = sunrise::nn::Init::new(opts.seed, DType::F32, d).expect("init");
        let model = spec.build(&mut init).expect("model");
        let stats = fit(&model, &tr, &te, d, &opts, &mut |_| {}, &mut |_| {})
            .unwrap_or_else(|e| panic!("training on {d}: {e}"));
        let last = *stats.last().expect("at least one epoch");
        println!(
            "train on {d}: {} epochs, final loss {:.4}, train acc {:.2}%, held-out acc {:.2}%, {:.1} s",
            stats.len(),
            last.loss,
            100.0 * last.train_accuracy,
            100.0 * last.test_accuracy,
            t.elapsed().as_secs_f64()
        );
        last
    };
    let cpu = run(&Device::cpu());
    let gpu = run(&dev);
    let fb: Vec<String> = sunrise::registry::fallback_counts()
        .into_iter()
        .filter(|(b, _, _)| b == dev.backend().name())
        .map(|(_, op, n)| format!("{op} x{n}"))
        .collect();
    if !fb.is_empty() {
        println!("ops that fell back to the CPU: {}", fb.join(", "));
    }
    assert!(
        gpu.loss.is_finite() && gpu.loss < 0.1,
        "the GPU run did not converge: {gpu:?}"
    );
    assert!(
        gpu.test_accuracy >= 0.95,
        "GPU held-out accuracy {:.4}",
        gpu.test_accuracy
    );
    assert!(
        (gpu.test_accuracy - cpu.test_accuracy).abs() <= 0.02,
        "held-out accuracy: cpu {:.4}, gpu {:.4}: more than 2 points apart",
        cpu.test_accuracy,
        gpu.test_accuracy
    );
}

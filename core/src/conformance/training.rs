//! A short training run on the device beside the same run on the built-in
//! CPU backend: the digits CNN of `sunrise train` on 300 samples, 6 epochs.

use crate::data::{digits, Normalization};
use crate::nn::Init;
use crate::train::{fit, EpochStats, ModelSpec, TrainOptions};
use crate::{DType, Device};

/// Relative difference allowed between the devices' per-epoch mean losses
/// (another summation order drifts a little over the steps).
pub const LOSS_TOL: f64 = 2e-3;
/// Absolute difference allowed between the final held-out accuracies.
pub const ACCURACY_TOL: f64 = 0.05;

fn run(dev: &Device) -> crate::Result<Vec<EpochStats>> {
    let mut all = digits()?;
    let norm = Normalization::new(0.0, 16.0)?;
    all.normalize(&norm);
    let small = all.subset(&(0..300).collect::<Vec<_>>())?;
    let (tr, te) = small.split_stratified(0.25, 3)?;
    let spec = ModelSpec::for_dataset(&tr, norm)?;
    let opts = TrainOptions {
        epochs: 6,
        ..Default::default()
    };
    let mut init = Init::new(opts.seed, DType::F32, dev)?;
    let model = spec.build(&mut init)?;
    fit(&model, &tr, &te, dev, &opts, &mut |_| {}, &mut |_| {})
}

/// Trains on `dev` and on the CPU; returns a one-line summary, or why the
/// two disagree.
pub(crate) fn compare(dev: &Device) -> Result<String, String> {
    let cpu = run(&Device::cpu()).map_err(|e| format!("on the cpu: {e}"))?;
    let got = run(dev).map_err(|e| format!("on {dev}: {e}"))?;
    let mut worst = 0f64;
    for (c, g) in cpu.iter().zip(&got) {
        if !g.loss.is_finite() {
            return Err(format!("epoch {}: loss {} on {dev}", g.epoch, g.loss));
        }
        let err = (c.loss - g.loss).abs() / c.loss.abs().max(1e-6);
        worst = worst.max(err);
        if err > LOSS_TOL {
            return Err(format!(
                "epoch {}: mean loss {:.6} on the cpu, {:.6} on {dev}: relative error {err:.2e} > {LOSS_TOL:.0e}",
                c.epoch, c.loss, g.loss
            ));
        }
    }
    let (Some(c), Some(g)) = (cpu.last(), got.last()) else {
        return Err("no epoch ran".into());
    };
    if (c.test_accuracy - g.test_accuracy).abs() > ACCURACY_TOL {
        return Err(format!(
            "held-out accuracy {:.3} on the cpu, {:.3} on {dev}",
            c.test_accuracy, g.test_accuracy
        ));
    }
    Ok(format!(
        "{} epochs; loss {:.4} (cpu {:.4}), worst epoch loss error {worst:.1e}; held-out accuracy {:.1}% (cpu {:.1}%)",
        got.len(),
        g.loss,
        c.loss,
        100.0 * g.test_accuracy,
        100.0 * c.test_accuracy
    ))
}

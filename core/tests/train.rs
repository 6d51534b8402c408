//! The main job's recipe: the default CNN on the embedded digits reaches at
//! least 97% held-out accuracy on the CPU, deterministically; a checkpoint
//! round trip evaluates bit for bit the same; bad checkpoints are typed
//! errors.

use sunrise::data::{digits, Normalization};
use sunrise::train::{self, ModelSpec, TrainOptions};
use sunrise::{Device, Error};

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sunrise-train-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn default_cnn_learns_digits_and_checkpoints_round_trip() {
    let cpu = Device::cpu();
    let mut all = digits().unwrap();
    let norm = Normalization::new(0.0, 16.0).unwrap();
    all.normalize(&norm);
    let (tr, te) = all.split_stratified(0.2, 7).unwrap();
    let spec = ModelSpec::for_dataset(&tr, norm).unwrap();
    let opts = TrainOptions::default();
    let mut init = sunrise::nn::Init::new(opts.seed, sunrise::DType::F32, &cpu).unwrap();
    let model = spec.build(&mut init).unwrap();
    let stats = train::fit(&model, &tr, &te, &cpu, &opts, &mut |_| {}, &mut |_| {}).unwrap();
    let last = stats.last().unwrap();
    eprintln!("{stats:#?}");
    assert!(
        last.test_accuracy >= 0.97,
        "held-out accuracy {:.4}",
        last.test_accuracy
    );
    assert!(stats.first().unwrap().loss > last.loss);

    let dir = temp("ckpt");
    let path = dir.join("digits.safetensors");
    train::save(&path, &model, &spec, &Default::default()).unwrap();
    let before = train::evaluate(&model, &te, &cpu, 64).unwrap();
    let (loaded, spec2) = train::load(&path, &cpu).unwrap();
    assert_eq!(spec2, spec);
    let after = train::evaluate(&loaded, &te, &cpu, 64).unwrap();
    assert_eq!(before.correct, after.correct);
    assert_eq!(
        before.loss.to_bits(),
        after.loss.to_bits(),
        "bit-identical evaluation"
    );

    // A truncated file and a file of another model are typed errors.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(train::load(&cut, &cpu), Err(Error::Checkpoint(_))));
    let mut meta = spec.to_metadata();
    meta.insert("sunrise.classes".into(), "7".into());
    let other = dir.join("other.safetensors");
    sunrise::checkpoint::save_with_metadata(
        &other,
        &sunrise::nn::Module::state_dict(&model),
        &meta,
    )
    .unwrap();
    match train::load(&other, &cpu) {
        Err(Error::ShapeMismatch { .. })
        | Err(Error::InvalidArgument { .. })
        | Err(Error::Checkpoint(_)) => {}
        other => panic!("a checkpoint whose shapes do not match loaded: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let cpu = Device::cpu();
    let mut all = digits().unwrap();
    let norm = Normalization::new(0.0, 16.0).unwrap();
    all.normalize(&norm);
    let small = all.subset(&(0..300).collect::<Vec<_>>()).unwrap();
    let (tr, te) = small.split_stratified(0.2, 1).unwrap();
    let spec = ModelSpec::for_dataset(&tr, norm).unwrap();
    let opts = TrainOptions {
        epochs: 2,
        ..Default::default()
    };
    let run = || {
        let mut init = sunrise::nn::Init::new(opts.seed, sunrise::DType::F32, &cpu).unwrap();
        let model = spec.build(&mut init).unwrap();
        let s = train::fit(&model, &tr, &te, &cpu, &opts, &mut |_| {}, &mut |_| {}).unwrap();
        s.iter()
            .map(|e| (e.loss.to_bits(), e.test_accuracy.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

//! `sunrise train` (the main job) and `sunrise eval`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sunrise::data::{self, csv::LabelColumn, Dataset, Normalization};
use sunrise::nn::{Init, Module};
use sunrise::train::{self, EpochStats, ModelSpec, Progress, TrainOptions};
use sunrise::{DType, Device};

/// Where the label sits in a CSV row.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LabelAt {
    /// The first column.
    First,
    /// The last column.
    Last,
}

/// Where the data comes from (shared by train and eval).
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data file: numeric CSV (label in one column) or MNIST IDX images
    /// (with --labels). Default: the embedded 8x8 digits set.
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX labels file that goes with an IDX images file given as --data.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// CSV: which column holds the label.
    #[arg(long, value_enum, default_value_t = LabelAt::Last)]
    label_column: LabelAt,
    /// CSV: shape of each sample's features, e.g. 1,28,28 (default: flat).
    #[arg(long, value_delimiter = ',')]
    shape: Option<Vec<usize>>,
    /// Fraction of the data held out for evaluation (stratified, seeded).
    #[arg(long, default_value_t = 0.2)]
    holdout: f64,
    /// Seed of the held-out split.
    #[arg(long, default_value_t = 7)]
    split_seed: u64,
}

/// Options of `sunrise train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Passes over the training data.
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = TrainOptions::default().batch_size)]
    batch_size: usize,
    /// Peak learning rate (AdamW with cosine decay).
    #[arg(long, default_value_t = TrainOptions::default().lr)]
    lr: f64,
    /// Seed of initialisation and shuffling (runs on the CPU are deterministic).
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    seed: u64,
    /// Write the trained model to this safetensors checkpoint.
    #[arg(long)]
    save: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// Options of `sunrise eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The checkpoint written by `sunrise train --save`.
    #[arg(long)]
    load: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

fn read_data(a: &DataArgs) -> sunrise::Result<(Dataset, bool)> {
    match (&a.data, &a.labels) {
        (None, None) => Ok((data::digits()?, true)),
        (None, Some(_)) => Err(sunrise::Error::InvalidArgument {
            op: "train",
            detail: "--labels needs --data IMAGES".into(),
        }),
        (Some(images), Some(labels)) => Ok((data::idx::read(images, labels)?, false)),
        (Some(path), None) => {
            let col = match a.label_column {
                LabelAt::First => LabelColumn::First,
                LabelAt::Last => LabelColumn::Last,
            };
            Ok((data::csv::read(path, col, a.shape.clone())?, false))
        }
    }
}

/// Splits and normalises: digits use their fixed 0..16 range; other data
/// the training split's min and max.
fn prepare(
    a: &DataArgs,
    fixed: Option<Normalization>,
) -> sunrise::Result<(Dataset, Dataset, Normalization)> {
    let (all, is_digits) = read_data(a)?;
    let (mut tr, mut te) = all.split_stratified(a.holdout, a.split_seed)?;
    let norm = match fixed {
        Some(n) => n,
        None if is_digits => Normalization::new(0.0, 16.0)?,
        None => Normalization::min_max(&tr)?,
    };
    tr.normalize(&norm);
    te.normalize(&norm);
    Ok((tr, te, norm))
}

fn bar(quiet: bool, epochs: usize, batches: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(batches as u64);
    let style =
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(format!("1/{epochs}"));
    pb
}

fn run_train(a: &TrainArgs, device: &Device) -> sunrise::Result<()> {
    let (tr, te, norm) = prepare(&a.data, None)?;
    let spec = ModelSpec::for_dataset(&tr, norm)?;
    let opts = TrainOptions {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        seed: a.seed,
        ..TrainOptions::default()
    };
    let mut init = Init::new(opts.seed, DType::F32, device)?;
    let model = spec.build(&mut init)?;
    let source = a
        .data
        .data
        .as_ref()
        .map_or("embedded 8x8 digits".to_string(), |p| {
            p.display().to_string()
        });
    println!(
        "training {:?} ({} parameters) on {} ({} train / {} held out, {} classes)",
        spec.arch,
        model.num_parameters(),
        source,
        tr.len(),
        te.len(),
        spec.classes
    );
    println!(
        "device {device}, CPU tier {}, {} threads",
        sunrise::cpu_isa().active,
        sunrise_backend_cpu::threads::num_threads()
    );
    let pb = bar(a.quiet, opts.epochs, tr.len().div_ceil(opts.batch_size));
    let started = Instant::now();
    let mut on_batch = |p: &Progress| {
        pb.set_prefix(format!("{}/{}", p.epoch, opts.epochs));
        pb.set_position(p.batch as u64);
        pb.set_message(format!("loss {:.4}", p.loss));
    };
    let mut on_epoch = |s: &EpochStats| {
        pb.suspend(|| {
            println!(
                "epoch {:>2}: loss {:.4}  train acc {:.2}%  held-out acc {:.2}%  {:.0} samples/s",
                s.epoch,
                s.loss,
                100.0 * s.train_accuracy,
                100.0 * s.test_accuracy,
                s.samples_per_second
            )
        });
        pb.reset();
    };
    let stats = train::fit(
        &model,
        &tr,
        &te,
        device,
        &opts,
        &mut on_batch,
        &mut on_epoch,
    )?;
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let last = stats.last().copied();
    let samples: f64 = stats.iter().map(|s| s.samples_per_second * s.seconds).sum();
    let train_secs: f64 = stats.iter().map(|s| s.seconds).sum();
    if let Some(s) = last {
        println!(
            "done: held-out accuracy {:.2}% ({} samples), train accuracy {:.2}%, {:.1} s wall, {:.0} samples/s",
            100.0 * s.test_accuracy, te.len(), 100.0 * s.train_accuracy, wall, samples / train_secs.max(1e-9)
        );
    }
    let fb = sunrise::registry::fallback_report();
    if !fb.is_empty() {
        // e.g. `add i64 x180 (partial, unlisted)`
        let list: Vec<String> = fb.iter().map(|f| f.to_string()).collect();
        println!("ops that fell back to the CPU: {}", list.join(", "));
    }
    if let Some(path) = &a.save {
        let mut extra = BTreeMap::new();
        extra.insert("sunrise.data".into(), source);
        extra.insert("sunrise.split_seed".into(), a.data.split_seed.to_string());
        extra.insert("sunrise.holdout".into(), a.data.holdout.to_string());
        train::save(path, &model, &spec, &extra)?;
        println!("saved {}", path.display());
    }
    Ok(())
}

fn run_eval(a: &EvalArgs, device: &Device) -> sunrise::Result<()> {
    let (model, spec) = train::load(&a.load, device)?;
    let (_, te, _) = prepare(&a.data, Some(spec.norm))?;
    let e = train::evaluate(&model, &te, device, 256)?;
    println!(
        "{}: held-out accuracy {:.2}% ({}/{}), loss {:.4}, on {device}",
        a.load.display(),
        100.0 * e.accuracy,
        e.correct,
        e.total,
        e.loss
    );
    Ok(())
}

fn finish(r: sunrise::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `sunrise train`.
pub fn train(a: &TrainArgs, device: &str) -> ExitCode {
    finish(
        sunrise::registry::registry()
            .device(device)
            .and_then(|d| run_train(a, &d)),
    )
}

/// `sunrise eval`.
pub fn eval(a: &EvalArgs, device: &str) -> ExitCode {
    finish(
        sunrise::registry::registry()
            .device(device)
            .and_then(|d| run_eval(a, &d)),
    )
}

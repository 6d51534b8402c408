//! Cross-backend conformance: the CPU backend loaded as a plugin (a real
//! `dlopen` of `libsunrise_backend_cpu.so` found through a
//! `SUNRISE_BACKEND_PATH` entry) must give bit-identical results to the CPU
//! backend linked into the core, for every op of op set v1, with no op
//! falling back.

mod common;

use sunrise::plugin::{discover_in, PathOrigin, SearchPath};
use sunrise::{Conv2dOptions, DType, Device, Pool2dOptions, Result, Tensor, UnaryOp};

fn plugin_device() -> (common::TempDir, Device) {
    let dir = common::TempDir::new("conformance");
    dir.copy_cdylib("sunrise-backend-cpu-plugin", common::CPU_PLUGIN);
    let d = discover_in(vec![SearchPath::new(dir.path(), PathOrigin::Env)]);
    let p = d
        .plugins
        .into_iter()
        .find(|p| p.name == "cpu")
        .expect("the CPU plugin loads");
    (dir, Device::from_backend(p.backend, 0, "cpu-plugin:0"))
}

/// The elements of any tensor as bit patterns, for exact comparison.
fn bits(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        DType::F64 => t
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        DType::I64 => t
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|&v| v as u64)
            .collect(),
        DType::U8 => t
            .to_vec::<u8>()
            .unwrap()
            .iter()
            .map(|&v| v as u64)
            .collect(),
    }
}

type Case = (&'static str, Box<dyn Fn(&Device) -> Result<Vec<Tensor>>>);

fn r(shape: &[usize], seed: u64, dev: &Device) -> Result<Tensor> {
    Tensor::rand_uniform(shape, -2.0, 2.0, seed, DType::F32, dev)
}

fn labels(dev: &Device) -> Result<Tensor> {
    Tensor::from_slice(&[0i64, 3, 1, 4, 2, 0], &[6], dev)
}

fn elementwise_cases() -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();
    for op in UnaryOp::ALL {
        v.push((
            "unary",
            Box::new(move |d| {
                let x = r(&[7, 33], 1, d)?.abs()?.add_scalar(0.1)?;
                let xt = x.t()?;
                let dy = r(&[33, 7], 2, d)?;
                Ok(vec![xt.unary(op)?, xt.unary_backward(op, &dy)?])
            }),
        ));
    }
    v.push((
        "binary",
        Box::new(|d| {
            let a = r(&[4, 1, 9], 3, d)?;
            let b = r(&[5, 9], 4, d)?.abs()?.add_scalar(0.5)?;
            Ok(vec![
                a.add(&b)?,
                a.sub(&b)?,
                a.mul(&b)?,
                a.div(&b)?,
                b.pow(&a)?,
                a.maximum(&b)?,
                a.minimum(&b)?,
                a.lt(&b)?,
                a.ge(&b)?,
                a.eq(&a)?,
                Tensor::where_(&a.gt(&b)?, &a, &b)?,
            ])
        }),
    ));
    v.push((
        "copy_cast_concat",
        Box::new(|d| {
            let a = r(&[6, 10], 5, d)?;
            let s = a.slice(1, 1, 9, 3)?;
            Ok(vec![
                s.contiguous()?,
                a.cast(DType::I64)?,
                a.cast(DType::F64)?,
                a.gt(&a.mul_scalar(0.5)?)?.cast(DType::F32)?,
                Tensor::concat(
                    &[&a, &s.contiguous()?.mul_scalar(2.0)?, &a.slice(1, 0, 2, 1)?],
                    1,
                )?,
                Tensor::full(&[3, 3], 2.5, DType::F64, d)?,
            ])
        }),
    ));
    v
}

fn reduce_and_nn_cases() -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();
    v.push((
        "reduce",
        Box::new(|d| {
            let a = r(&[3, 5, 7], 6, d)?.permute(&[2, 0, 1])?;
            Ok(vec![
                a.sum(&[0, 2], false)?,
                a.mean(&[1], true)?,
                a.max(&[2], false)?,
                a.min(&[0], false)?,
                a.argmax(1, false)?,
                a.sum_all()?,
            ])
        }),
    ));
    v.push((
        "softmax",
        Box::new(|d| {
            let a = r(&[6, 5], 7, d)?;
            let dy = r(&[6, 5], 8, d)?;
            let (s, l) = (a.softmax(-1)?, a.log_softmax(0)?);
            Ok(vec![
                Tensor::softmax_backward(&s, &dy, -1)?,
                Tensor::log_softmax_backward(&l, &dy, 0)?,
                s,
                l,
            ])
        }),
    ));
    v.push((
        "norms",
        Box::new(|d| {
            let x = r(&[4, 3, 5, 5], 9, d)?;
            let dy = r(&[4, 3, 5, 5], 10, d)?;
            let (g, b) = (r(&[5, 5], 11, d)?, r(&[5, 5], 12, d)?);
            let ln = x.layer_norm(&g, &b, 1e-5)?;
            let (dx, dg, db) = Tensor::layer_norm_backward(&x, &g, &ln.mean, &ln.rstd, &dy, 1e-5)?;
            let (gc, bc) = (r(&[3], 13, d)?, r(&[3], 14, d)?);
            let bn = x.batch_norm_train(&gc, &bc, 1e-5)?;
            let (bdx, bdg, bdb) =
                Tensor::batch_norm_backward(&x, &gc, &bn.mean, &bn.rstd, &dy, 1e-5)?;
            let var = bc.abs()?;
            let inf = x.batch_norm_infer(&gc, &bc, &bn.mean, &var, 1e-5)?;
            Ok(vec![
                ln.y, ln.mean, ln.rstd, dx, dg, db, bn.y, bn.mean, bn.rstd, bdx, bdg, bdb, inf,
            ])
        }),
    ));
    v.push((
        "index_and_loss",
        Box::new(|d| {
            let table = r(&[5, 4], 15, d)?;
            let idx = labels(d)?;
            let emb = table.index_select(0, &idx)?;
            let grad = table.zeros_like()?;
            grad.index_add_(0, &idx, &emb)?;
            let logits = r(&[6, 5], 16, d)?;
            let loss = Tensor::cross_entropy(&logits, &idx, 2)?;
            let dl = Tensor::cross_entropy_backward(&logits, &idx, &loss, 2)?;
            Ok(vec![emb, grad, loss, dl])
        }),
    ));
    v
}

fn dense_cases() -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();
    v.push((
        "matmul",
        Box::new(|d| {
            let a = r(&[2, 37, 19], 17, d)?;
            let b = r(&[23, 19], 18, d)?.t()?;
            Ok(vec![
                a.matmul(&b)?,
                r(&[64, 64], 19, d)?.matmul(&r(&[64, 48], 20, d)?)?,
            ])
        }),
    ));
    v.push((
        "conv_pool",
        Box::new(|d| {
            let x = r(&[2, 4, 9, 9], 21, d)?;
            let w = r(&[6, 2, 3, 3], 22, d)?;
            let bias = r(&[6], 23, d)?;
            let o = Conv2dOptions {
                stride: [2, 1],
                padding: [1, 1],
                dilation: [1, 2],
                groups: 2,
            };
            let y = x.conv2d(&w, Some(&bias), &o)?;
            let dy = r(y.shape(), 24, d)?;
            let p = Pool2dOptions {
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1],
                count_include_pad: false,
            };
            let mp = x.max_pool2d(&p)?;
            let ap = x.avg_pool2d(&p)?;
            let dp = r(mp.shape(), 25, d)?;
            Ok(vec![
                Tensor::conv2d_backward_data(&dy, &w, x.shape(), &o)?,
                Tensor::conv2d_backward_filter(&x, &dy, w.shape(), &o)?,
                Tensor::max_pool2d_backward(&x, &dp, &p)?,
                Tensor::avg_pool2d_backward(&dp, x.shape(), &p)?,
                x.global_avg_pool2d()?,
                y,
                mp,
                ap,
            ])
        }),
    ));
    v
}

#[test]
fn cpu_plugin_is_bit_identical_to_the_linked_backend() {
    let (_dir, plugin) = plugin_device();
    assert_ne!(plugin, Device::cpu());
    let linked = Device::cpu();
    let mut checked = 0;
    for (name, case) in elementwise_cases()
        .into_iter()
        .chain(reduce_and_nn_cases())
        .chain(dense_cases())
    {
        let a = case(&linked).unwrap_or_else(|e| panic!("{name} on the linked backend: {e}"));
        let b = case(&plugin).unwrap_or_else(|e| panic!("{name} through the plugin: {e}"));
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(y.device(), &plugin, "{name}[{i}] left the plugin device");
            assert_eq!(x.shape(), y.shape(), "{name}[{i}]");
            assert_eq!(
                bits(x),
                bits(y),
                "{name}[{i}] differs between linked and plugin"
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} outputs compared");
    let fell_back: Vec<_> = sunrise::registry::fallback_counts()
        .into_iter()
        .filter(|(b, _, _)| b == "cpu")
        .collect();
    assert!(
        fell_back.is_empty(),
        "the CPU plugin implements every op: {fell_back:?}"
    );
}

#[test]
fn training_through_the_cpu_plugin_matches_the_linked_backend_bit_for_bit() {
    use sunrise::data::{digits, Normalization};
    use sunrise::train::{fit, ModelSpec, TrainOptions};
    let (_dir, plugin) = plugin_device();
    let mut all = digits().unwrap();
    let norm = Normalization::new(0.0, 16.0).unwrap();
    all.normalize(&norm);
    let small = all.subset(&(0..200).collect::<Vec<_>>()).unwrap();
    let (tr, te) = small.split_stratified(0.25, 3).unwrap();
    let spec = ModelSpec::for_dataset(&tr, norm).unwrap();
    let opts = TrainOptions {
        epochs: 2,
        ..Default::default()
    };
    let run = |dev: &Device| {
        let mut init = sunrise::nn::Init::new(opts.seed, DType::F32, dev).unwrap();
        let model = spec.build(&mut init).unwrap();
        let stats = fit(&model, &tr, &te, dev, &opts, &mut |_| {}, &mut |_| {}).unwrap();
        let params: Vec<Vec<u64>> = sunrise::nn::Module::state_dict(&model)
            .iter()
            .map(|(_, t)| bits(t))
            .collect();
        (
            stats.iter().map(|s| s.loss.to_bits()).collect::<Vec<_>>(),
            params,
        )
    };
    let (linked, on_plugin) = (run(&Device::cpu()), run(&plugin));
    assert_eq!(linked.0, on_plugin.0, "losses differ");
    assert_eq!(linked.1, on_plugin.1, "trained weights differ");
}

#[test]
fn the_conformance_suite_passes_the_cpu_plugin_on_every_pair_of_op_set_v1() {
    use sunrise::conformance::{self, Options, Row};
    use sunrise::OpId;
    let (_dir, plugin) = plugin_device();
    let report = conformance::run(&plugin, &Options::default(), &mut |row| match row {
        Row::Pair(p) => println!("  {}", p.line()),
        Row::Check(c) => println!("  {}", c.line()),
    });
    println!("{} ({:.1} s)", report.summary(), report.seconds);
    let failures: Vec<&str> = report.failures().collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(report.pairs.len() > 100, "{} pairs", report.pairs.len());
    assert!(report.unlisted.is_empty(), "{:?}", report.unlisted);
    for op in OpId::ALL {
        assert!(
            report.pairs.iter().any(|p| p.op == *op),
            "{op}: no row, so no case of it ran"
        );
    }
    let names: Vec<&str> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, ["buffers", "training"]);
    assert!(report.pairs.iter().filter(|p| p.error_paths > 0).count() > 40);
}

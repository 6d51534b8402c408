//! `SUNRISE_NUM_THREADS=1` means one thread: no op of the CPU backend hands
//! work to rayon's global pool (sized by the core count), whatever its size.
//!
//! The global pool is given one worker, and that worker is kept busy for the
//! whole test: an op whose parallel iterators escaped the backend's own pool
//! would wait for it forever, and the test fails on its time limit instead of
//! passing with a second thread secretly at work. One test in its own binary,
//! so the variable is set before the backend's pool exists.

use std::sync::mpsc;
use std::time::Duration;

use sunrise::{Conv2dOptions, DType, Device, Pool2dOptions, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &Device::cpu()).unwrap()
}

/// Every op family, each on more elements than the threading threshold
/// (2^17), forward and backward.
fn every_family() -> sunrise::Result<()> {
    let rows = rand(&[512, 1024], 1);
    let y = rows.softmax(-1)?;
    Tensor::softmax_backward(&y, &rows, -1)?;
    let ly = rows.log_softmax(-1)?;
    Tensor::log_softmax_backward(&ly, &rows, -1)?;
    rows.sum(&[-1], false)?;
    rows.sum(&[0], false)?;
    rows.argmax(-1, false)?;
    rows.argmax(0, false)?;
    rows.add(&rows)?.relu()?;
    let (g, b) = (rand(&[1024], 2), rand(&[1024], 3));
    let ln = rows.layer_norm(&g, &b, 1e-5)?;
    Tensor::layer_norm_backward(&rows, &g, &ln.mean, &ln.rstd, &rows, 1e-5)?;
    let labels: Vec<i64> = (0..512).map(|i| (i * 7) % 1024).collect();
    let labels = Tensor::from_slice(&labels, &[512], &Device::cpu())?;
    Tensor::cross_entropy(&rows, &labels, -100)?;
    Tensor::cross_entropy_backward(&rows, &labels, &rand(&[512], 4), -100)?;
    let idx = Tensor::from_slice(&[3i64, 1, 4, 1, 5, 9, 2, 6], &[8], &Device::cpu())?;
    rows.index_select(1, &idx)?;
    let big = rand(&[4096, 64], 5);
    big.index_select(
        0,
        &Tensor::from_slice(&[0i64; 4096], &[4096], &Device::cpu())?,
    )?;
    let acc = Tensor::zeros(&[8, 64], DType::F32, &Device::cpu())?;
    acc.index_add_(
        0,
        &Tensor::from_slice(&[1i64; 4096], &[4096], &Device::cpu())?,
        &big,
    )?;
    rows.matmul(&rand(&[1024, 256], 6))?;

    let img = rand(&[4, 16, 64, 64], 7);
    let (gc, bc) = (rand(&[16], 8), rand(&[16], 9));
    let bn = img.batch_norm_train(&gc, &bc, 1e-5)?;
    Tensor::batch_norm_backward(&img, &gc, &bn.mean, &bn.rstd, &img, 1e-5)?;
    let pool = Pool2dOptions::square(2);
    let p = img.max_pool2d(&pool)?;
    Tensor::max_pool2d_backward(&img, &p, &pool)?;
    img.avg_pool2d(&pool)?;
    let same = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    let w = rand(&[16, 16, 3, 3], 10);
    let out = img.conv2d(&w, None, &same)?;
    Tensor::conv2d_backward_data(&out, &w, img.shape(), &same)?;
    Tensor::conv2d_backward_filter(&img, &out, w.shape(), &same)?;
    let depthwise = Conv2dOptions { groups: 16, ..same };
    img.conv2d(&rand(&[16, 1, 3, 3], 11), None, &depthwise)?;
    Ok(())
}

#[test]
fn one_thread_never_reaches_the_global_pool() {
    // Set before any other thread of this binary exists.
    std::env::set_var("SUNRISE_NUM_THREADS", "1");
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("the global pool is built first");
    let (release, blocked) = mpsc::channel::<()>();
    let (busy, started) = mpsc::channel::<()>();
    rayon::spawn(move || {
        busy.send(()).unwrap();
        blocked.recv().ok();
    });
    started.recv().unwrap();

    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(every_family().map_err(|e| e.to_string())));
    let outcome = finished.recv_timeout(Duration::from_secs(120));
    release.send(()).unwrap();
    match outcome {
        Ok(r) => r.expect("every op runs"),
        Err(_) => panic!(
            "an op waited for rayon's global pool with SUNRISE_NUM_THREADS=1: its parallel \
             loop ran outside the backend's one-thread pool"
        ),
    }
    assert_eq!(sunrise_backend_cpu::threads::num_threads(), 1);
}

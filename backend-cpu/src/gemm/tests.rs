//! Our packed GEMM at every tier this machine has, driven through
//! [`table_for`], against a naive f64 reference; the engine choice; and an
//! ignored throughput figure (`cargo test --release -p sunrise-backend-cpu
//! gemm_throughput -- --ignored --nocapture`).

use super::kernels::table_for;
use super::*;
use crate::testing::Rng;

/// A column-major or row-major test matrix.
struct Mat<T> {
    data: Vec<T>,
    rs: usize,
    cs: usize,
}

impl<T: Float> Mat<T> {
    fn random(rows: usize, cols: usize, transposed: bool, rng: &mut Rng) -> Self {
        let data = rng.vec::<T>(rows * cols, -1.0, 1.0);
        let (rs, cs) = if transposed { (1, rows) } else { (cols, 1) };
        Mat { data, rs, cs }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.rs + j * self.cs].to_f64()
    }

    fn as_ref(&self) -> MatRef<T> {
        MatRef {
            ptr: self.data.as_ptr(),
            rs: self.rs,
            cs: self.cs,
        }
    }
}

/// Runs one GEMM with `kern` (or the engine rule when `None`) and checks it
/// element by element against the f64 reference, with a bound of
/// `(k + 2) eps sum |terms|`.
#[allow(
    clippy::too_many_arguments,
    reason = "a test helper spelling out one case"
)]
fn check<T: GemmScalar>(
    kern: Option<&GemmKernel<T>>,
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    (alpha, beta): (f64, f64),
    parallel: bool,
    eps: f64,
    rng: &mut Rng,
) {
    let a = Mat::<T>::random(m, k, ta, rng);
    let b = Mat::<T>::random(k, n, tb, rng);
    let ldc = n + 3;
    let c0: Vec<T> = rng.vec(m * ldc, -1.0, 1.0);
    let mut c = c0.clone();
    if beta == 0.0 {
        c.iter_mut().for_each(|v| *v = T::from_f64(f64::NAN));
    }
    let call = GemmCall {
        m,
        n,
        k,
        a: a.as_ref(),
        b: b.as_ref(),
        c: MatMut {
            ptr: c.as_mut_ptr(),
            rs: ldc,
        },
        alpha: T::from_f64(alpha),
        beta: T::from_f64(beta),
    };
    // SAFETY: the matrices cover their extents; C is a distinct buffer.
    unsafe {
        match kern {
            Some(kern) if m > 0 && n > 0 && k > 0 => packed_gemm(kern, &call, parallel),
            _ => gemm(
                &call,
                if parallel {
                    Threads::Auto
                } else {
                    Threads::Single
                },
            ),
        }
    }
    let name = kern.map_or("engine", |k| k.name);
    for i in 0..m {
        for j in 0..n {
            let (want, tol) = expect(
                &a,
                &b,
                (i, j, k),
                (alpha, beta),
                c0[i * ldc + j].to_f64(),
                eps,
            );
            let got = c[i * ldc + j].to_f64();
            assert!(
                (got - want).abs() <= tol,
                "{name}: ({m}x{n}x{k}, ta {ta}, tb {tb}, alpha {alpha}, beta {beta}) at ({i},{j}): {got} vs {want}"
            );
        }
        for j in n..ldc {
            assert_eq!(
                c[i * ldc + j].to_f64().to_bits(),
                c_pad(&c0, beta, i * ldc + j),
                "padding written"
            );
        }
    }
}

/// The reference value of `C[i, j]` and its error bound `(k + 2) eps sum |terms|`.
fn expect<T: Float>(
    a: &Mat<T>,
    b: &Mat<T>,
    (i, j, k): (usize, usize, usize),
    (alpha, beta): (f64, f64),
    c0: f64,
    eps: f64,
) -> (f64, f64) {
    let (mut s, mut mag) = (0.0, 0.0);
    for p in 0..k {
        s += a.at(i, p) * b.at(p, j);
        mag += (a.at(i, p) * b.at(p, j)).abs();
    }
    let prior = if beta == 0.0 { 0.0 } else { beta * c0 };
    let tol = (k as f64 + 2.0) * eps * (alpha.abs() * mag + prior.abs()) + 1e-300;
    (alpha * s + prior, tol)
}

/// What the untouched padding column of C should hold.
fn c_pad<T: Float>(c0: &[T], beta: f64, idx: usize) -> u64 {
    if beta == 0.0 {
        f64::NAN.to_bits()
    } else {
        c0[idx].to_f64().to_bits()
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 67, 5),
    (67, 1, 9),
    (13, 31, 33),
    (14, 32, 16),
    (15, 33, 17),
    (29, 47, 300),
    (64, 64, 64),
    (37, 600, 11),
    (130, 70, 257),
    // Deeper than one packed block: split into equal blocks (2 of 512,
    // 3 of 536 with a shorter last one).
    (33, 17, 1023),
    (7, 40, 1600),
];

fn every_tier<T: GemmScalar>(eps: f64, pick: fn(&KernelTable) -> GemmKernel<T>) {
    let mut rng = Rng::new(7);
    for tier in isa::available_tiers() {
        let kern = pick(&table_for(tier));
        assert!(kern.isa <= tier, "{} above tier {tier}", kern.name);
        for &shape in SHAPES {
            for layout in [(false, false), (true, false), (false, true), (true, true)] {
                check(Some(&kern), shape, layout, (1.0, 0.0), false, eps, &mut rng);
            }
            check(
                Some(&kern),
                shape,
                (false, false),
                (-0.5, 1.5),
                false,
                eps,
                &mut rng,
            );
            check(
                Some(&kern),
                shape,
                (true, true),
                (2.0, 1.0),
                true,
                eps,
                &mut rng,
            );
        }
    }
}

#[test]
fn own_f32_kernels_match_reference_at_every_tier() {
    every_tier::<f32>(f32::EPSILON as f64, |t| t.f32);
}

#[test]
fn own_f64_kernels_match_reference_at_every_tier() {
    every_tier::<f64>(f64::EPSILON, |t| t.f64);
}

#[test]
fn tables_climb_the_tiers() {
    for tier in isa::available_tiers() {
        let t = table_for(tier);
        let want = if cfg!(target_arch = "x86_64") && tier != Isa::Neon {
            tier
        } else {
            Isa::Portable
        };
        assert_eq!(t.f32.isa, want, "{}", t.f32.name);
        assert_eq!(t.f64.isa, want, "{}", t.f64.name);
        assert!(t.f32.mr * t.f32.nr <= kernels::MAX_TILE);
        for (isa, tile) in [
            t.f32.narrow.map(|k| (k.isa, k.mr * k.nr)),
            t.f64.narrow.map(|k| (k.isa, k.mr * k.nr)),
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(isa, want, "a narrow kernel of another tier");
            assert!(tile <= kernels::MAX_TILE);
        }
        assert!(t.f32.name.starts_with(want.name()) && t.f32.name.contains("_gemm_f32_"));
    }
}

#[test]
fn tall_blocks_and_engine_rule() {
    let mut rng = Rng::new(3);
    let kern = table_for(isa::tier()).f32;
    // More rows than one slab of packed A (2048), and more columns than
    // one slab holds (one block of at most 768 alone, or ~8 MB of A when
    // threaded: fewer than 1100 columns of 2100 rows), in parallel and not.
    for (shape, par) in [
        ((2100, 3, 70), true),
        ((2100, 5, 1100), false),
        ((2100, 40, 1100), true),
    ] {
        check(
            Some(&kern),
            shape,
            (false, true),
            (1.0, 0.5),
            par,
            f32::EPSILON as f64,
            &mut rng,
        );
    }
    // The engine the rule picks, including k == 0 and empty outputs.
    for shape in [(70, 80, 90), (5, 7, 0), (0, 3, 4), (3, 0, 4)] {
        check::<f32>(
            None,
            shape,
            (true, false),
            (1.0, 0.25),
            true,
            f32::EPSILON as f64,
            &mut rng,
        );
        check::<f64>(
            None,
            shape,
            (false, true),
            (0.5, 0.0),
            false,
            f64::EPSILON,
            &mut rng,
        );
    }
    assert_eq!(uses_crate(), crate_tier() == Some(isa::tier()));
}

/// GFLOP/s of f32 GEMM (n^3, row-major) with the `gemm` crate and with our
/// kernels at the AVX2 and AVX-512 tiers, on `SUNRISE_NUM_THREADS` threads.
#[test]
#[ignore = "throughput figure, not a test; run with --release --ignored --nocapture"]
fn gemm_throughput() {
    let mut rng = Rng::new(1);
    println!("threads: {}", threads::num_threads());
    for n in [512usize, 1024] {
        let a: Vec<f32> = rng.vec(n * n, -1.0, 1.0);
        let b: Vec<f32> = rng.vec(n * n, -1.0, 1.0);
        let mut c = vec![0f32; n * n];
        let call = GemmCall {
            m: n,
            n,
            k: n,
            a: MatRef {
                ptr: a.as_ptr(),
                rs: n,
                cs: 1,
            },
            b: MatRef {
                ptr: b.as_ptr(),
                rs: n,
                cs: 1,
            },
            c: MatMut {
                ptr: c.as_mut_ptr(),
                rs: n,
            },
            alpha: 1.0,
            beta: 0.0,
        };
        let par = threads::num_threads() > 1;
        // Best of several timed runs (the machine is shared and noisy).
        let time = |f: &dyn Fn()| {
            f();
            let reps = if n <= 512 { 30 } else { 8 };
            let best = (0..reps)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min);
            2.0 * (n * n * n) as f64 / best / 1e9
        };
        // SAFETY: the three buffers cover n x n each and are distinct.
        let crate_rate = time(&|| unsafe { crate_gemm(&call, par) });
        println!(
            "f32 {n}^3 gemm crate ({:?}): {crate_rate:.1} GFLOP/s",
            crate_tier()
        );
        for tier in [Isa::Avx2, Isa::Avx512] {
            if !isa::available_tiers().contains(&tier) {
                continue;
            }
            let kern = table_for(tier).f32;
            // SAFETY: as above; the kernel's tier is available.
            let rate = time(&|| unsafe { packed_gemm(&kern, &call, par) });
            println!("f32 {n}^3 {}: {rate:.1} GFLOP/s", kern.name);
        }
    }
}

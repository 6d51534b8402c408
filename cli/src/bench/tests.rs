//! Unit tests of the bench driver, its peers and its tables (the runs
//! themselves are exercised end to end by `cli/tests/cli.rs`).

use std::time::Duration;

use clap::Parser;
use serde_json::json;
use sunrise_backend_cpu::isa::{self, Isa};

use super::conv::ConvCase;
use super::openblas::OpenBlas;
use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
}

#[test]
fn arguments_parse_suites_tiers_and_threads() {
    let a = parse(&[
        "gemm",
        "--tiers",
        "avx2,portable",
        "--threads",
        "1,2",
        "--json",
    ])
    .unwrap();
    assert_eq!(a.suite, Some(Suite::Gemm));
    assert_eq!(a.tiers, vec![Isa::Avx2, Isa::Portable]);
    assert_eq!(a.threads, vec![1, 2]);
    assert!(a.json);
    let a = parse(&["--filter", "add", "--seconds", "0.01"]).unwrap();
    assert_eq!(a.suite, None);
    assert_eq!(a.filter.as_deref(), Some("add"));
    assert!(parse(&["conv", "--threads", "0"]).is_err());
    assert!(parse(&["memory", "--tiers", "avx9"]).is_err());
    assert!(parse(&["nosuch"]).is_err());
    assert!(parse(&["--seconds", "inf"]).is_err());
    assert!(parse(&["--seconds", "-1"]).is_err());
}

#[test]
fn default_thread_counts_depend_on_the_suite() {
    assert_eq!(thread_counts(Suite::Ops, &[]), vec![None]);
    assert_eq!(thread_counts(Suite::Gemm, &[]), vec![Some(1), Some(2)]);
    assert_eq!(thread_counts(Suite::Memory, &[4]), vec![Some(4)]);
}

#[test]
fn tiers_default_to_all_available_and_refuse_others() {
    let available = isa::available_tiers();
    assert_eq!(select_tiers(&[]).unwrap(), available);
    let top = *available.last().unwrap();
    assert_eq!(select_tiers(&[top, top]).unwrap(), vec![top]);
    let all = [Isa::Portable, Isa::Sse2, Isa::Avx2, Isa::Avx512, Isa::Neon];
    if let Some(&missing) = all.iter().find(|t| !available.contains(t)) {
        let e = select_tiers(&[missing]).unwrap_err();
        assert!(matches!(e, BenchError::Tier { tier, .. } if tier == missing));
        assert!(e.to_string().contains("not available"), "{e}");
    }
}

#[test]
fn timing_runs_at_least_three_times_and_stops_on_errors() {
    let mut calls = 0;
    let t = time_median(
        || {
            calls += 1;
            Ok::<(), String>(())
        },
        Duration::ZERO,
    )
    .unwrap();
    assert!(t >= 0.0 && calls == 4, "{calls} calls");
    let (mut a, mut b) = (0, 0);
    time_pair(
        || {
            a += 1;
            Ok::<(), String>(())
        },
        || {
            b += 1;
            Ok(())
        },
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!((a, b), (4, 4));
    let e = time_median(|| Err::<(), _>("boom"), Duration::ZERO).unwrap_err();
    assert_eq!(e, "boom");
}

#[test]
fn conv_cases_name_themselves_and_count_flops() {
    let c = ConvCase {
        n: 8,
        c: 64,
        h: 56,
        w: 56,
        k: 64,
        kernel: 3,
        stride: 1,
        pad: 1,
    };
    assert_eq!(c.name(), "N8-C64-56x56-K64-3x3-s1-p1");
    assert_eq!(c.flops(), 2.0 * (8 * 64 * 56 * 56 * 64 * 9) as f64);
    let stem = ConvCase {
        c: 3,
        h: 224,
        w: 224,
        kernel: 7,
        stride: 2,
        pad: 3,
        ..c
    };
    assert_eq!(stem.flops(), 2.0 * (8 * 64 * 112 * 112 * 3 * 49) as f64);
}

#[test]
fn onnxruntime_reports_a_missing_script_or_python() {
    let case = ConvCase {
        n: 1,
        c: 1,
        h: 4,
        w: 4,
        k: 1,
        kernel: 3,
        stride: 1,
        pad: 0,
    };
    let dir = std::env::temp_dir().join("sunrise-bench-no-scripts-here");
    let e = onnxruntime::measure("python3", &dir, &case, 1, Duration::ZERO).unwrap_err();
    assert!(e.contains("not found"), "{e}");
    let scripts = onnxruntime::script_dir(None);
    let e = onnxruntime::measure("/nonexistent/python3", &scripts, &case, 1, Duration::ZERO)
        .unwrap_err();
    assert!(e.contains("cannot run"), "{e}");
}

#[test]
fn openblas_multiplies_or_says_how_to_install_it() {
    let blas = match OpenBlas::load() {
        Ok(b) => b,
        Err(reason) => {
            assert_eq!(reason, "install libopenblas0");
            return;
        }
    };
    blas.set_threads(1);
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
    let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3 x 2
    let mut c = [0.0; 4];
    blas.sgemm((2, 3, 2), &a, &b, &mut c).unwrap();
    assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    assert!(blas.sgemm((2, 3, 3), &a, &b, &mut c).is_err());
}

#[test]
fn tables_sort_by_case_pass_threads_then_tier() {
    let row = |case: &str, pass: &str, threads: u64, isa: &str| json!({"case": case, "pass": pass, "threads": threads, "isa": isa});
    let rows = vec![
        row("b", "forward", 2, "avx2"),
        row("b", "backward_data", 1, "portable"),
        row("b", "forward_nhwc", 1, "avx2"),
        row("a", "forward", 1, "avx2"),
        row("b", "forward", 1, "avx2"),
        row("b", "forward", 1, "portable"),
    ];
    let sorted = report::sorted(&rows, &[Isa::Portable, Isa::Avx2]);
    let order: Vec<(&str, &str, u64, &str)> = sorted
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap();
            (
                s("case"),
                s("pass"),
                r["threads"].as_u64().unwrap(),
                s("isa"),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("b", "forward", 1, "portable"),
            ("b", "forward", 1, "avx2"),
            ("b", "forward", 2, "avx2"),
            ("b", "forward_nhwc", 1, "avx2"),
            ("b", "backward_data", 1, "portable"),
            ("a", "forward", 1, "avx2"),
        ]
    );
}

#[test]
fn memcpy_copies_every_element() {
    let mut c = memory::Copier::new(1000);
    c.copy(777);
    assert!(c.dst[..777].iter().zip(&c.src).all(|(d, s)| d == s));
    assert!(c.dst[777..].iter().all(|&d| d == 0.0));
}

#[test]
fn gemm_difference_is_relative_to_the_peer() {
    assert_eq!(gemm::max_rel_diff(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
    assert!((gemm::max_rel_diff(&[1.0, 4.1], &[1.0, 4.0]) - 0.025).abs() < 1e-6);
}

#[test]
fn peak_is_measured_for_the_x86_tiers_this_cpu_has_and_only_those() {
    assert_eq!(peak::fma_peak(Isa::Portable, 1), None);
    assert_eq!(peak::fma_peak(Isa::Neon, 1), None);
    for tier in [Isa::Sse2, Isa::Avx2, Isa::Avx512] {
        let got = peak::fma_peak(tier, 2);
        let have = cfg!(target_arch = "x86_64") && isa::available_tiers().contains(&tier);
        assert_eq!(got.is_some(), have, "{tier}: {got:?}");
        if let Some(p) = got {
            assert!(p.is_finite() && p > 0.1, "{tier}: {p} GFLOP/s");
        }
    }
}

//! `sunrise conformance` end to end: the CPU backend loaded as a plugin
//! (a real dlopen), the JSON report, the partial fixture's unlisted ops, and
//! the exit status for a device that cannot be opened.

#[path = "../../tests/tests/common/mod.rs"]
mod common;
mod support;

use support::{stdout, sunrise, text};

#[test]
fn the_cpu_plugin_passes_and_the_table_ends_with_the_counts() {
    let dir = common::TempDir::new("cli-conformance");
    let plugin = dir.copy_cdylib("sunrise-backend-cpu-plugin", common::CPU_PLUGIN);
    let path = plugin.to_str().unwrap();
    let o = sunrise(
        &["--device", "cpu", "conformance", "--ops", "add,conv2d*,sum"],
        &[("SUNRISE_BACKEND_PATH", path)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("the CPU backend loaded as a plugin from {path}")),
        "{out}"
    );
    for row in [
        "add ",
        "conv2d ",
        "conv2d_backward_data ",
        "conv2d_backward_filter ",
        "sum ",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(row) && l.ends_with(" ok")),
            "{row}: {out}"
        );
    }
    let rows = out.lines().filter(|l| l.ends_with(" ok")).count();
    assert!(rows >= 9, "{out}");
    assert_eq!(
        out.lines().last().map(String::from),
        Some(format!("{rows} passed, 0 failed")),
        "{out}"
    );
}

#[test]
fn json_has_one_object_with_rows_and_counts() {
    let o = sunrise(&["conformance", "--ops", "relu,where", "--json"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let pairs = v["pairs"].as_array().unwrap();
    let names: Vec<String> = pairs
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["op"].as_str().unwrap(),
                p["dtype"].as_str().unwrap()
            )
        })
        .collect();
    assert!(names.contains(&"relu f32".to_string()), "{names:?}");
    assert!(names.contains(&"where u8".to_string()), "{names:?}");
    assert!(pairs
        .iter()
        .all(|p| p["passed"] == true && p["error_paths"].as_u64() > Some(5)));
    assert_eq!(v["failed"], 0);
    assert_eq!(v["passed"].as_u64(), Some(pairs.len() as u64));
    assert!(
        v["checks"].as_array().unwrap().is_empty(),
        "--ops skips buffers and training"
    );
}

#[test]
fn a_plugin_listing_few_ops_passes_those_names_the_rest_and_fails_a_lie() {
    // The partial fixture lists fill, copy, cast, add and mul on f32, and
    // mul on f64, which it then answers Unsupported for.
    let dir = common::TempDir::new("cli-conformance-partial");
    let plugin = dir.copy_cdylib("sunrise-fixture-partial", "libsunrise_backend_partial.so");
    let o = sunrise(
        &["--device", "partial", "conformance", "--no-training"],
        &[("SUNRISE_BACKEND_PATH", plugin.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().last(), Some("6 passed, 1 failed"), "{out}");
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAILED ")).collect();
    assert!(!failed.is_empty(), "{out}");
    assert!(
        failed.iter().all(|l| l.starts_with("FAILED mul f64 [")),
        "{failed:#?}"
    );
    // Every case ran on the CPU; the bad calls got Unsupported instead of
    // invalid argument.
    assert!(
        failed
            .iter()
            .any(|l| l.contains("ran on the CPU, not on partial:0")),
        "{failed:#?}"
    );
    assert!(
        failed
            .iter()
            .any(|l| l.starts_with("FAILED mul f64 [errors] ")),
        "{failed:#?}"
    );
    let unlisted = out
        .lines()
        .find(|l| l.starts_with("not listed by partial:0"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        unlisted.contains("matmul") && unlisted.contains("conv2d"),
        "{unlisted}"
    );
}

#[test]
fn a_device_that_cannot_be_opened_exits_2_and_says_why() {
    let o = sunrise(&["--device", "nosuch", "conformance"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nosuch"), "{err}");
}

//! The tables `sunrise bench` prints from its children's JSON lines.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sunrise_backend_cpu::isa::Isa;

use super::Suite;

/// The line above a table: suite, tiers, threads and the timing rule.
pub(crate) fn header(suite: Suite, tiers: &[Isa], threads: &[Option<usize>], seconds: f64) {
    let tiers: Vec<&str> = tiers.iter().map(|t| t.name()).collect();
    let threads: Vec<String> = threads
        .iter()
        .map(|n| n.map_or_else(|| "default".into(), |n| n.to_string()))
        .collect();
    println!(
        "sunrise bench {}: tiers {}; threads {}; warm-up, then the median of runs over {seconds} s per measurement",
        suite.name(),
        tiers.join(", "),
        threads.join(", "),
    );
}

/// Prints the table of `suite` from `rows`.
pub(crate) fn table(suite: Suite, rows: &[Value], tiers: &[Isa]) {
    match suite {
        Suite::Ops => ops_table(rows, tiers),
        Suite::Gemm => peer_table(rows, tiers, "GFLOP/s", "gflops", false),
        Suite::Conv => peer_table(rows, tiers, "GFLOP/s", "gflops", true),
        Suite::Memory => peer_table(rows, tiers, "GB/s", "gbps", false),
        Suite::Cuda => super::cuda::table(rows),
        Suite::Train => super::train::table(&sorted(rows, tiers)),
        Suite::Onnx => super::onnx::table(&sorted(rows, tiers)),
    }
}

fn text<'a>(r: &'a Value, key: &str) -> &'a str {
    r[key].as_str().unwrap_or("")
}

fn ops_table(rows: &[Value], tiers: &[Isa]) {
    type Key = (String, String, String, u64);
    let mut by_case: BTreeMap<Key, BTreeMap<String, f64>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in rows {
        let key = (
            text(r, "op").to_string(),
            text(r, "case").to_string(),
            text(r, "unit").to_string(),
            r["threads"].as_u64().unwrap_or(0),
        );
        if !by_case.contains_key(&key) {
            order.push(key.clone());
        }
        let vals = by_case.entry(key).or_default();
        if let (Some(t), Some(v)) = (r["isa"].as_str(), r["value"].as_f64()) {
            vals.insert(t.to_string(), v);
        }
    }
    print!("{:<11} {:<22} {:<8} {:>7}", "op", "case", "unit", "threads");
    for t in tiers {
        print!(" {:>9}", t.name());
    }
    println!("  best/portable");
    for key in order {
        let vals = &by_case[&key];
        print!("{:<11} {:<22} {:<8} {:>7}", key.0, key.1, key.2, key.3);
        for t in tiers {
            match vals.get(t.name()) {
                Some(v) => print!(" {v:>9.2}"),
                None => print!(" {:>9}", "-"),
            }
        }
        let base = vals.get("portable").copied();
        let best = tiers.last().and_then(|t| vals.get(t.name())).copied();
        match (base, best) {
            (Some(b), Some(x)) if b > 0.0 && key.0 != "memcpy" => println!("  {:>6.2}x", x / b),
            _ => println!(),
        }
    }
    for r in rows.iter().filter(|r| r["error"].is_string()) {
        println!(
            "error: {} at {}: {}",
            text(r, "op"),
            text(r, "isa"),
            text(r, "error")
        );
    }
    println!("(memcpy: the copy bandwidth peer measured in the same run; GB/s counts bytes read + written)");
}

/// The peers' descriptions (or why they are unavailable), once each.
fn peer_lines(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .filter_map(|r| {
            let peer = r["peer"].as_str()?;
            Some(
                match (r["peer_detail"].as_str(), r["peer_error"].as_str()) {
                    (Some(d), _) => format!("peer: {peer} ({d})"),
                    (None, Some(e)) => format!("peer: unavailable ({e})"),
                    (None, None) => format!("peer: {peer}"),
                },
            )
        })
        .collect()
}

/// Sorts rows by case (first seen first), pass, threads, then tier.
pub(crate) fn sorted<'a>(rows: &'a [Value], tiers: &[Isa]) -> Vec<&'a Value> {
    let mut cases: Vec<&str> = Vec::new();
    for r in rows {
        if !cases.contains(&text(r, "case")) {
            cases.push(text(r, "case"));
        }
    }
    let pass_rank = |p: &str| {
        [
            "forward",
            "forward_nhwc",
            "backward_data",
            "backward_filter",
        ]
        .iter()
        .position(|&x| x == p)
    };
    let mut out: Vec<&Value> = rows.iter().collect();
    out.sort_by_key(|r| {
        (
            cases.iter().position(|&c| c == text(r, "case")),
            pass_rank(text(r, "pass")),
            r["threads"].as_u64(),
            tiers.iter().position(|t| t.name() == text(r, "isa")),
        )
    });
    out
}

fn figure(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

/// The columns of one suite's table.
struct Columns<'a> {
    case_w: usize,
    passes: bool,
    unit: &'a str,
    ours_key: String,
    peer_key: String,
    /// Whether rows carry the tier's measured peak (`bench gemm`).
    peak: bool,
}

impl Columns<'_> {
    fn pass(&self, p: &str) -> String {
        if self.passes {
            format!(" {p:<15}")
        } else {
            String::new()
        }
    }

    fn header(&self) {
        let unit = self.unit;
        print!(
            "{:<w$}{} {:>7} {:<8} {:>12} {:<11} {:>12} {:>9}{}",
            "case",
            self.pass("pass"),
            "threads",
            "isa",
            format!("ours {unit}"),
            "peer",
            format!("peer {unit}"),
            "ours/peer",
            if self.passes { "   vs fwd" } else { "" },
            w = self.case_w,
        );
        if self.peak {
            println!(" {:>12} {:>9}", "peak GFLOP/s", "ours/peak");
        } else {
            println!();
        }
    }

    fn row(&self, r: &Value) {
        print!(
            "{:<w$}{} {:>7} {:<8}",
            text(r, "case"),
            self.pass(text(r, "pass")),
            r["threads"].as_u64().unwrap_or(0),
            text(r, "isa"),
            w = self.case_w,
        );
        if let Some(e) = r["error"].as_str() {
            println!(" error: {e}");
            return;
        }
        let peer = match (r["peer"].as_str(), r["peer_error"].is_string()) {
            (_, true) => "unavailable",
            (Some(p), false) => p,
            (None, false) => "-",
        };
        let ratio = r["ratio"]
            .as_f64()
            .map_or_else(|| "-".into(), |x| format!("{x:.2}x"));
        print!(
            " {:>12} {:<11} {:>12} {:>9}",
            figure(&r[&self.ours_key]),
            peer,
            figure(&r[&self.peer_key]),
            ratio
        );
        if let Some(v) = r["vs_forward"].as_f64() {
            print!(" {v:>7.2}x");
        }
        if self.peak {
            let of = r["ours_of_peak"]
                .as_f64()
                .map_or_else(|| "-".into(), |x| format!("{:.0}%", 100.0 * x));
            print!(" {:>12} {of:>9}", figure(&r["peak_gflops"]));
        }
        println!();
    }
}

fn peer_table(rows: &[Value], tiers: &[Isa], unit: &str, key: &str, passes: bool) {
    for line in peer_lines(rows) {
        println!("{line}");
    }
    let cols = Columns {
        case_w: rows
            .iter()
            .map(|r| text(r, "case").len())
            .fold(4, usize::max),
        passes,
        unit,
        ours_key: format!("ours_{key}"),
        peer_key: format!("peer_{key}"),
        peak: rows.iter().any(|r| r["peak_gflops"].is_number()),
    };
    cols.header();
    for r in sorted(rows, tiers) {
        cols.row(r);
    }
    let off = rows
        .iter()
        .any(|r| r["max_rel_diff"].as_f64().is_some_and(|d| d > 1e-3));
    if off {
        println!("warning: some results differ from the peer's by more than 1e-3 of their largest value (see --json max_rel_diff)");
    }
    if cols.peak {
        println!(
            "(peak: the tier's multiply-add peak on as many threads, measured in the same run)"
        );
    }
    if passes {
        println!("(vs fwd: our time for the pass over our forward time; ONNX Runtime only infers, so backward passes have no peer)");
        println!("(forward_nhwc: input and output channels-last, beside ONNX Runtime's NCHW figure, reorders included)");
    }
    if unit == "GB/s" {
        println!(
            "(GB/s counts bytes read + written once each; the memcpy peer moves the same bytes)"
        );
    }
}

//! The op conformance suite for any device: every (op, dtype) pair its
//! backend lists, run through the public tensor API on seeded random,
//! strided and broadcast inputs, forward and backward (autograd gradients
//! where the op is differentiable), compared with the CPU backend linked
//! into this crate within a tolerance per op family ([`Family::tol`]);
//! then buffer round trips, the error paths of the ABI (bad descriptors
//! must get `InvalidArgument`), and a short training run compared with the
//! CPU. `sunrise conformance --device NAME` prints its [`Report`]; the
//! CUDA tests, `scripts/gpu-check.sh` and a third-party backend's own CI
//! run the same suite.
//!
//! An (op, dtype) pair the device lists but that runs on the CPU anyway
//! (the backend answered `Unsupported`) is a failure: conformance compares
//! the device's kernels, not the CPU's.
//!
//! ```
//! use sunrise::conformance::{run, Options};
//! let opts = Options { ops: vec!["relu".into()], ..Options::default() };
//! let report = run(&sunrise::Device::cpu(), &opts, &mut |_| {});
//! assert!(report.failed() == 0 && report.passed() >= 2, "{report:?}");
//! ```

mod abi_checks;
mod cases;
mod compare;
mod inputs;
mod training;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

pub use compare::{compare, Family};
pub use training::{ACCURACY_TOL, LOSS_TOL};

use crate::{DType, Device, OpId};
use cases::{Case, Fail};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Op-name patterns (`*` matches any run of characters, e.g. `conv*`);
    /// empty: every op. A pattern limits the op rows and the error paths;
    /// the buffer and training checks run only when no pattern is given.
    pub ops: Vec<String>,
    /// Run the short training comparison.
    pub training: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ops: Vec::new(),
            training: true,
        }
    }
}

/// The result of one (op, dtype) pair.
#[derive(Debug, Clone)]
pub struct PairRow {
    /// The op.
    pub op: OpId,
    /// The dtype (of the op's first input).
    pub dtype: DType,
    /// Input configurations run.
    pub cases: usize,
    /// Outputs compared (values and gradients).
    pub outputs: usize,
    /// The largest error as a fraction of its tolerance (0 when every
    /// output was exact).
    pub worst: f64,
    /// The tolerances that applied, smallest first (empty: all exact).
    pub tolerances: Vec<f64>,
    /// Error paths checked (bad descriptors through the ABI).
    pub error_paths: usize,
    /// What failed, one line each (`op dtype [case] output: why`).
    pub failures: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// The result of a check that is not one op: `buffers`, `training`, or
/// `listing` (pairs the backend lists that this suite or op set v1 does
/// not know).
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// The check's name.
    pub name: &'static str,
    /// What it did, in one line.
    pub detail: String,
    /// What failed, one line each.
    pub failures: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// One row of the report, as [`run`] hands it to its callback.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// An (op, dtype) pair.
    Pair(&'a PairRow),
    /// Another check.
    Check(&'a CheckRow),
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The device, as it prints (`cuda:0`).
    pub device: String,
    /// Its backend's name.
    pub backend: String,
    /// One row per (op, dtype) pair run.
    pub pairs: Vec<PairRow>,
    /// The other checks.
    pub checks: Vec<CheckRow>,
    /// Ops of op set v1 the backend lists for no dtype (they run on the CPU).
    pub unlisted: Vec<&'static str>,
    /// Wall time.
    pub seconds: f64,
}

impl Report {
    /// Rows that passed.
    pub fn passed(&self) -> usize {
        self.pairs.iter().filter(|p| p.failures.is_empty()).count()
            + self.checks.iter().filter(|c| c.failures.is_empty()).count()
    }

    /// Rows that failed.
    pub fn failed(&self) -> usize {
        self.pairs.len() + self.checks.len() - self.passed()
    }

    /// Every failure line, in row order.
    pub fn failures(&self) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .flat_map(|p| &p.failures)
            .chain(self.checks.iter().flat_map(|c| &c.failures))
            .map(String::as_str)
    }

    /// `N passed, M failed`: the last line of `sunrise conformance`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

impl PairRow {
    /// The comparison column: `exact`, or the worst error as a fraction of
    /// the tolerances that applied.
    pub fn accuracy(&self) -> String {
        if self.tolerances.is_empty() {
            return "exact".into();
        }
        let t: Vec<String> = self.tolerances.iter().map(|t| format!("{t:.0e}")).collect();
        format!("worst {:.2} of tolerance ({})", self.worst, t.join(", "))
    }

    /// One table line: op, dtype, cases, outputs, accuracy, verdict.
    pub fn line(&self) -> String {
        format!(
            "{:<24} {:<4} {:>3} cases {:>4} outputs {:>2} error paths  {:<44} {}",
            self.op.name(),
            self.dtype.name(),
            self.cases,
            self.outputs,
            self.error_paths,
            self.accuracy(),
            if self.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            }
        )
    }
}

impl CheckRow {
    /// One table line: name, what it did, verdict.
    pub fn line(&self) -> String {
        format!(
            "{:<29} {:<78} {}",
            self.name,
            self.detail,
            if self.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            }
        )
    }
}

/// True when `name` matches a pattern where `*` stands for any run of
/// characters (and nothing else is special).
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| matches(rest, &tail[i..]))
        }
    }
}

/// True when this suite has cases for `op` on `dtype` (every pair the CPU
/// backend lists).
pub fn has_cases(op: OpId, dtype: DType) -> bool {
    cases::cases_for(op, dtype).is_some()
}

/// Runs the suite on `dev`; `on_row` sees each row as it completes (for a
/// live table).
pub fn run(dev: &Device, opts: &Options, on_row: &mut dyn FnMut(Row<'_>)) -> Report {
    let started = Instant::now();
    let selected = |op: OpId| opts.ops.is_empty() || opts.ops.iter().any(|p| matches(p, op.name()));
    let mut pairs = Vec::new();
    let mut unknown = Vec::new();
    for p in dev.backend().supported_ops() {
        match (OpId::from_u32(p.op), DType::from_u32(p.dtype)) {
            (Some(op), Some(d)) if selected(op) => pairs.push((op, d)),
            (Some(_), Some(_)) => {}
            _ => unknown.push(format!(
                "listing: {dev} lists a pair op set v1 does not know: op {} dtype {}",
                p.op, p.dtype
            )),
        }
    }
    pairs.sort();
    pairs.dedup();
    let mut report = Report {
        device: dev.to_string(),
        backend: dev.backend().name().to_string(),
        pairs: Vec::new(),
        checks: Vec::new(),
        unlisted: OpId::ALL
            .iter()
            .filter(|op| !DType::ALL.iter().any(|&d| dev.supports(**op, d)))
            .map(|op| op.name())
            .collect(),
        seconds: 0.0,
    };
    for (op, d) in pairs {
        let row = pair_row(dev, op, d);
        on_row(Row::Pair(&row));
        report.pairs.push(row);
    }
    if !unknown.is_empty() || report.pairs.is_empty() {
        let mut failures = unknown;
        if report.pairs.is_empty() {
            failures.push(format!(
                "listing: {dev} lists no (op, dtype) pair{}",
                if opts.ops.is_empty() {
                    ""
                } else {
                    " matching the --ops patterns"
                }
            ));
        }
        push_check(
            &mut report,
            on_row,
            "listing",
            "the pairs the backend lists".into(),
            failures,
            0.0,
        );
    }
    if opts.ops.is_empty() {
        let t = Instant::now();
        let b = abi_checks::buffers(dev);
        let detail = format!(
            "{} round trips (0 bytes to 32 MiB), reads and writes past the end",
            b.count
        );
        push_check(
            &mut report,
            on_row,
            "buffers",
            detail,
            b.failures,
            t.elapsed().as_secs_f64(),
        );
        if opts.training {
            let t = Instant::now();
            let (detail, failures) = match training::compare(dev) {
                Ok(s) => (s, Vec::new()),
                Err(e) => (
                    "digits CNN, 300 samples, 6 epochs".into(),
                    vec![format!("training: {e}")],
                ),
            };
            push_check(
                &mut report,
                on_row,
                "training",
                detail,
                failures,
                t.elapsed().as_secs_f64(),
            );
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn push_check(
    report: &mut Report,
    on_row: &mut dyn FnMut(Row<'_>),
    name: &'static str,
    detail: String,
    failures: Vec<String>,
    seconds: f64,
) {
    let row = CheckRow {
        name,
        detail,
        failures,
        seconds,
    };
    on_row(Row::Check(&row));
    report.checks.push(row);
}

/// How often `op` fell back from `backend` to the CPU so far.
fn fallbacks_of(backend: &str, op: OpId) -> u64 {
    crate::registry::fallback_counts()
        .into_iter()
        .filter(|(b, o, _)| b == backend && o == op.name())
        .map(|(_, _, n)| n)
        .sum()
}

/// Runs every case of one pair on `dev` and on the CPU, then its error
/// paths.
fn pair_row(dev: &Device, op: OpId, d: DType) -> PairRow {
    let started = Instant::now();
    let mut row = PairRow {
        op,
        dtype: d,
        cases: 0,
        outputs: 0,
        worst: 0.0,
        tolerances: Vec::new(),
        error_paths: 0,
        failures: Vec::new(),
        seconds: 0.0,
    };
    match cases::cases_for(op, d) {
        Some(cases) => {
            row.cases = cases.len();
            for c in &cases {
                run_case(dev, op, d, c, &mut row);
            }
        }
        None => row.failures.push(format!(
            "{op} {d}: listed by {dev}, but op set v1 does not define {op} on {d} (the CPU backend has no such kernel to compare with)"
        )),
    }
    if abi_checks::has_error_paths(op) {
        let e = abi_checks::error_paths(dev, op, d);
        row.error_paths = e.count;
        row.failures.extend(e.failures);
    }
    row.tolerances.sort_by(f64::total_cmp);
    row.seconds = started.elapsed().as_secs_f64();
    row
}

/// Runs `case` on `dev` and on the CPU, catching a panic on either side.
fn run_guarded(case: &Case, dev: &Device) -> Result<Vec<cases::Out>, Fail> {
    catch_unwind(AssertUnwindSafe(|| (case.run)(dev)))
        .unwrap_or_else(|_| Err(Fail("the case panicked on the host side".into())))
}

fn run_case(dev: &Device, op: OpId, d: DType, c: &Case, row: &mut PairRow) {
    let cpu = Device::cpu();
    let backend = dev.backend().name().to_string();
    let tag = format!("{op} {d} [{}]", c.what);
    let reference = match run_guarded(c, &cpu) {
        Ok(r) => r,
        Err(Fail(e)) => {
            return row
                .failures
                .push(format!("{tag}: the CPU reference failed: {e}"))
        }
    };
    let before = fallbacks_of(&backend, op);
    let got = run_guarded(c, dev);
    if fallbacks_of(&backend, op) > before {
        row.failures.push(format!(
            "{tag}: {op} ran on the CPU, not on {dev} (the backend answered Unsupported for a pair it lists)"
        ));
    }
    let got = match got {
        Ok(g) => g,
        Err(Fail(e)) => return row.failures.push(format!("{tag}: on {dev}: {e}")),
    };
    if got.len() != reference.len() {
        return row.failures.push(format!(
            "{tag}: {} outputs on the CPU, {} on {dev}",
            reference.len(),
            got.len()
        ));
    }
    for (r, g) in reference.iter().zip(&got) {
        if g.t.device() != dev {
            row.failures.push(format!(
                "{tag} {}: the output is on {}, not {dev}",
                g.name,
                g.t.device()
            ));
        }
        let tol = c.family.tol(r.t.dtype(), r.grad);
        if let Some(t) = tol {
            if !row.tolerances.contains(&t) {
                row.tolerances.push(t);
            }
        }
        match compare::measure(&r.t, &g.t, tol) {
            Ok(e) => row.worst = row.worst.max(e / tol.unwrap_or(1.0)),
            Err(m) => {
                if let Some(w) = m.worst {
                    row.worst = row.worst.max(w / tol.unwrap_or(1.0));
                }
                row.failures
                    .push(format!("{tag} {}: {}", r.name, m.message));
            }
        }
        row.outputs += 1;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("add", "add"));
        assert!(!matches("add", "add2"));
        assert!(matches("conv*", "conv2d_backward_data"));
        assert!(matches("*backward*", "max_pool2d_backward"));
        assert!(matches("*", ""));
        assert!(!matches("conv*x", "conv2d"));
        assert!(matches("a*b*c", "aXbYc"));
    }

    #[test]
    fn every_pair_the_cpu_lists_has_cases() {
        let cpu = Device::cpu();
        let pairs = cpu.backend().supported_ops();
        assert!(pairs.len() > 100);
        for p in pairs {
            let (op, d) = (
                OpId::from_u32(p.op).unwrap(),
                DType::from_u32(p.dtype).unwrap(),
            );
            assert!(has_cases(op, d), "{op} {d}");
        }
    }
}

//! Instruction-set tiers, chosen once at run time.
//!
//! The crate is compiled for the baseline target (x86-64: SSE2, aarch64:
//! NEON). Each op family keeps a table of kernels that starts portable and
//! is overwritten tier by tier up to [`tier()`], the best tier the CPU and
//! OS support (`is_x86_feature_detected!` checks both), capped by the
//! `SUNRISE_CPU_ISA` environment variable. The cap can lower the tier,
//! never raise it.

use std::sync::OnceLock;

/// An ISA tier, ordered from least to most capable on each architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust only (used by tests as the reference tier).
    Portable,
    /// x86-64 baseline: SSE2.
    Sse2,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/DQ.
    Avx512,
    /// aarch64 NEON.
    Neon,
}

impl Isa {
    /// Lower-case name, as `SUNRISE_CPU_ISA` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Sse2 => "sse2",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a `SUNRISE_CPU_ISA` value.
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" | "generic" | "scalar" => Some(Isa::Portable),
            "sse2" => Some(Isa::Sse2),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            "neon" => Some(Isa::Neon),
            _ => None,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the tier in use was chosen, for `sunrise doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsaChoice {
    /// The best tier this CPU and OS support.
    pub detected: Isa,
    /// The tier in use.
    pub active: Isa,
    /// Why `active` is what it is, in one sentence.
    pub reason: String,
    /// The CPU features that decided it (e.g. `avx512f avx512bw ...`).
    pub features: Vec<&'static str>,
}

/// The best tier the CPU and OS support, and the features seen.
pub fn detect() -> (Isa, Vec<&'static str>) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut seen = vec!["sse2"];
        let mut tier = Isa::Sse2;
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if avx2 {
            seen.extend(["avx2", "fma"]);
            tier = Isa::Avx2;
        }
        let avx512 = avx2
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq");
        if avx512 {
            seen.extend(["avx512f", "avx512bw", "avx512vl", "avx512dq"]);
            tier = Isa::Avx512;
        }
        (tier, seen)
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            (Isa::Neon, vec!["neon"])
        } else {
            (Isa::Portable, vec![])
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (Isa::Portable, vec![])
    }
}

/// Applies a cap to a detected tier: the lower of the two, where "lower"
/// only compares tiers of the same architecture (NEON is capped only by
/// `portable`).
pub fn capped(detected: Isa, cap: Option<Isa>) -> Isa {
    match cap {
        None => detected,
        Some(Isa::Portable) => Isa::Portable,
        Some(c) if detected == Isa::Neon => {
            if c == Isa::Neon {
                Isa::Neon
            } else {
                Isa::Portable
            }
        }
        Some(Isa::Neon) => detected.min(Isa::Sse2),
        Some(c) => detected.min(c),
    }
}

fn choose() -> IsaChoice {
    let (detected, features) = detect();
    let env = std::env::var("SUNRISE_CPU_ISA")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let (active, reason) = match env.as_deref().map(|s| (s, Isa::parse(s))) {
        None => (
            detected,
            format!("best tier this CPU and OS support ({})", features.join(" ")),
        ),
        Some((raw, None)) => (
            detected,
            format!(
                "SUNRISE_CPU_ISA={raw:?} is not a tier (portable, sse2, avx2, avx512, neon); ignored, using the best supported"
            ),
        ),
        Some((_, Some(cap))) => {
            let active = capped(detected, Some(cap));
            let why = if active == cap {
                format!("capped by SUNRISE_CPU_ISA={cap} (CPU supports {detected})")
            } else if cap > detected {
                format!("SUNRISE_CPU_ISA={cap} asks for more than the CPU supports; using {active}")
            } else {
                format!("SUNRISE_CPU_ISA={cap} does not apply to this architecture; using {active}")
            };
            (active, why)
        }
    };
    IsaChoice {
        detected,
        active,
        reason,
        features,
    }
}

static CHOICE: OnceLock<IsaChoice> = OnceLock::new();

/// The tier choice, made once per process.
pub fn choice() -> &'static IsaChoice {
    CHOICE.get_or_init(choose)
}

/// The tier in use.
pub fn tier() -> Isa {
    choice().active
}

/// Every tier this machine can run, lowest first (for tests and benches
/// that compare each tier with the portable kernels).
pub fn available_tiers() -> Vec<Isa> {
    let (detected, _) = detect();
    let all = [Isa::Portable, Isa::Sse2, Isa::Avx2, Isa::Avx512, Isa::Neon];
    all.into_iter()
        .filter(|&t| capped(detected, Some(t)) == t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_never_raises() {
        assert_eq!(capped(Isa::Avx2, Some(Isa::Avx512)), Isa::Avx2);
        assert_eq!(capped(Isa::Avx512, Some(Isa::Sse2)), Isa::Sse2);
        assert_eq!(capped(Isa::Avx512, None), Isa::Avx512);
        assert_eq!(capped(Isa::Neon, Some(Isa::Avx2)), Isa::Portable);
        assert_eq!(capped(Isa::Sse2, Some(Isa::Neon)), Isa::Sse2);
    }

    #[test]
    fn available_tiers_start_portable_and_include_detected() {
        let t = available_tiers();
        assert_eq!(t[0], Isa::Portable);
        assert!(t.contains(&detect().0));
    }
}

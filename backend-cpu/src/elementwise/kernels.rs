//! The table of flat f32 kernels: filled with the portable kernels, then
//! overwritten tier by tier up to the tier in use, once per process.

use std::sync::OnceLock;

use sunrise_backend_api::OpId;

use crate::isa::{self, Isa};

use super::portable;

/// A flat binary kernel `out[i] = f(a[i], b[i])` (also `(x, dy) -> dx`).
/// Kernels use the shortest of the three lengths.
///
/// # Safety
/// Calling a table's kernel needs the CPU to support the table's tier,
/// which [`table_for`] guarantees for the tables it builds.
pub(crate) type Bin<T> = unsafe fn(&[T], &[T], &mut [T]);
/// A flat binary kernel with a scalar second operand: `out[i] = f(a[i], b)`.
pub(crate) type BinS<T> = unsafe fn(&[T], T, &mut [T]);
/// A flat binary kernel with a scalar first operand: `out[i] = f(a, b[i])`.
pub(crate) type SBin<T> = unsafe fn(T, &[T], &mut [T]);
/// A flat unary kernel `out[i] = f(x[i])`.
pub(crate) type Un<T> = unsafe fn(&[T], &mut [T]);

/// The three forms of one binary op.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinKernels<T: 'static> {
    /// Both operands contiguous.
    pub vv: Bin<T>,
    /// `b` a broadcast scalar.
    pub vs: BinS<T>,
    /// `a` a broadcast scalar.
    pub sv: SBin<T>,
}

/// Flat f32 kernels for one tier. Entries without a SIMD version at that
/// tier hold the portable kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    /// The highest tier whose kernels were installed.
    pub tier: Isa,
    /// `add` .. `minimum`, indexed by [`bin_slot`].
    pub binary: [BinKernels<f32>; 7],
    /// `neg` .. `silu`, indexed by [`un_slot`].
    pub unary: [Un<f32>; 12],
    /// As [`Table::binary`], writing the output with streaming
    /// (non-temporal) stores: for outputs too large to stay cached.
    pub binary_nt: [BinKernels<f32>; 7],
    /// As [`Table::unary`], with streaming stores.
    pub unary_nt: [Un<f32>; 12],
    /// `unary_backward` of `relu`: `(x, dy) -> dx`.
    pub relu_backward: Bin<f32>,
}

/// Index of binary op `op` (`add` .. `minimum`) in [`Table::binary`].
pub(crate) const fn bin_slot(op: OpId) -> usize {
    op as usize - OpId::Add as usize
}

/// Index of unary op `op` (`neg` .. `silu`) in [`Table::unary`].
pub(crate) const fn un_slot(op: OpId) -> usize {
    op as usize - OpId::Neg as usize
}

fn portable_table() -> Table {
    let bin = |op| portable::float_binary::<f32>(op).expect("add..minimum are binary float ops");
    let un = |op| portable::float_unary::<f32>(op).expect("neg..silu are unary float ops");
    let binary = std::array::from_fn(|i| bin(OpId::ALL[OpId::Add as usize - 1 + i]));
    let unary = std::array::from_fn(|i| un(OpId::ALL[OpId::Neg as usize - 1 + i]));
    Table {
        tier: Isa::Portable,
        binary,
        unary,
        binary_nt: binary,
        unary_nt: unary,
        relu_backward: portable::float_backward::<f32>(OpId::Relu).expect("relu is unary"),
    }
}

/// The table for tier `isa`, capped at what this CPU supports (a tier the
/// CPU lacks gets the best one below it), so its kernels are always safe
/// to call here.
pub(crate) fn table_for(isa: Isa) -> Table {
    let (detected, _) = isa::detect();
    let tier = isa::capped(detected, Some(isa));
    #[allow(unused_mut, reason = "only SIMD architectures overwrite entries")]
    let mut t = portable_table();
    #[cfg(target_arch = "x86_64")]
    {
        if tier >= Isa::Sse2 {
            super::simd_sse2::plug(&mut t);
        }
        if tier >= Isa::Avx2 {
            super::simd_avx2::plug(&mut t);
        }
        if tier >= Isa::Avx512 {
            super::simd_avx512::plug(&mut t);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if tier == Isa::Neon {
            super::simd_neon::plug(&mut t);
        }
    }
    let _ = tier;
    t
}

impl Table {
    /// The kernels of binary op `op` for an output of `bytes` bytes that is
    /// `contiguous`: streaming ones past [`stream_threshold`].
    pub(crate) fn binary_for(&self, op: OpId, bytes: usize, contiguous: bool) -> BinKernels<f32> {
        if contiguous && bytes >= stream_threshold() {
            self.binary_nt[bin_slot(op)]
        } else {
            self.binary[bin_slot(op)]
        }
    }

    /// The kernel of unary op `op`, chosen as in [`Table::binary_for`].
    pub(crate) fn unary_for(&self, op: OpId, bytes: usize, contiguous: bool) -> Un<f32> {
        if contiguous && bytes >= stream_threshold() {
            self.unary_nt[un_slot(op)]
        } else {
            self.unary[un_slot(op)]
        }
    }
}

/// Output bytes from which elementwise kernels write with streaming
/// stores: the size of the last-level cache (an output that large cannot
/// stay cached for its consumer anyway, and streaming spares the
/// read-for-ownership of every output line). Read once from sysfs;
/// 32 MiB where it cannot be read.
pub(crate) fn stream_threshold() -> usize {
    static BYTES: OnceLock<usize> = OnceLock::new();
    *BYTES.get_or_init(|| last_level_cache().unwrap_or(32 << 20))
}

/// The largest cache of CPU 0, from `/sys/devices/system/cpu/cpu0/cache`.
fn last_level_cache() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("size")).ok())
        .filter_map(|s| parse_cache_size(s.trim()))
        .max()
}

/// The size of CPU 0's level-`level` data or unified cache, from sysfs.
pub(crate) fn cache_of_level(level: u32) -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            read("level").trim() == level.to_string() && read("type").trim() != "Instruction"
        })
        .filter_map(|p| parse_cache_size(std::fs::read_to_string(p.join("size")).ok()?.trim()))
        .max()
}

/// `"32768K"`, `"1M"` or `"512"` as bytes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = num.parse().ok()?;
    match unit {
        "" => Some(n),
        "K" => n.checked_mul(1 << 10),
        "M" => n.checked_mul(1 << 20),
        "G" => n.checked_mul(1 << 30),
        _ => None,
    }
}

/// The table for the tier in use ([`isa::tier`]), built once.
pub(crate) fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| table_for(isa::tier()))
}

#[cfg(test)]
mod tests {
    use super::parse_cache_size;

    #[test]
    fn cache_sizes_parse() {
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
        assert_eq!(parse_cache_size("1M"), Some(1 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("x"), None);
        assert_eq!(parse_cache_size("12Q"), None);
    }
}

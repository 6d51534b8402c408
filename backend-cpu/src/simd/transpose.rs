//! f32 transposes with an optional bias per output row, shared by the
//! channel-blocked convolution (blocking the input, writing NCHW output)
//! and the GEMM packing of transposed operands: 8x8 blocks in YMM
//! registers on the AVX tiers, one element at a time elsewhere.

use crate::isa::{self, Isa};

/// `dst[j ds + i] = src[i ss + j] + bias[j]` for `i < rows`, `j < cols`
/// (no bias: `+ 0`), one element at a time: the edges of the tiered
/// transposes, and the portable reference of the tests.
///
/// # Safety
/// Every address named is valid (`src` for reading, `dst` for writing);
/// `bias` has at least `cols` entries.
pub(crate) unsafe fn scalar(
    src: *const f32,
    ss: usize,
    dst: *mut f32,
    ds: usize,
    (rows, cols): (usize, usize),
    bias: Option<&[f32]>,
) {
    for j in 0..cols {
        let b = bias.map_or(0.0, |b| b[j]);
        for i in 0..rows {
            // SAFETY: per the caller.
            unsafe { *dst.add(j * ds + i) = *src.add(i * ss + j) + b };
        }
    }
}

/// A transpose with bias as [`scalar`] computes it.
pub(crate) type TransposeFn =
    unsafe fn(*const f32, usize, *mut f32, usize, (usize, usize), Option<&[f32]>);

/// The transpose for `isa`: the AVX one on the AVX2 and AVX-512 tiers.
pub(crate) fn f32_for(isa: Isa) -> TransposeFn {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512) {
        return x86::avx_f32;
    }
    let _ = isa;
    scalar
}

/// The transpose for the tier in use.
pub(crate) fn f32() -> TransposeFn {
    static F: std::sync::OnceLock<TransposeFn> = std::sync::OnceLock::new();
    *F.get_or_init(|| f32_for(isa::tier()))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::scalar;

    /// [`scalar`] in 8x8 blocks held in YMM registers (eight
    /// row loads, the unpack/shuffle/permute network, eight row stores),
    /// the edges one element at a time.
    ///
    /// # Safety
    /// As [`scalar`]; the CPU has AVX.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn avx_f32(
        src: *const f32,
        ss: usize,
        dst: *mut f32,
        ds: usize,
        (rows, cols): (usize, usize),
        bias: Option<&[f32]>,
    ) {
        let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
        // SAFETY: the blocks lie inside the caller's rows x cols.
        unsafe {
            for j0 in (0..c8).step_by(8) {
                let b: [__m256; 8] =
                    std::array::from_fn(|jj| _mm256_set1_ps(bias.map_or(0.0, |b| b[j0 + jj])));
                for i0 in (0..r8).step_by(8) {
                    let v = block8(src.add(i0 * ss + j0), ss);
                    for (jj, (&row, &bj)) in v.iter().zip(&b).enumerate() {
                        _mm256_storeu_ps(dst.add((j0 + jj) * ds + i0), _mm256_add_ps(row, bj));
                    }
                }
            }
            if r8 < rows {
                let tail = (rows - r8, c8);
                scalar(src.add(r8 * ss), ss, dst.add(r8), ds, tail, bias);
            }
            if c8 < cols {
                let bias = bias.map(|b| &b[c8..]);
                let edge = (rows, cols - c8);
                scalar(src.add(c8), ss, dst.add(c8 * ds), ds, edge, bias);
            }
        }
    }

    /// The 8x8 block at `p` (rows `ss` apart), transposed: element `j` of
    /// result `i` is row `j`'s element `i`.
    ///
    /// # Safety
    /// The CPU has AVX; eight rows of eight f32 are readable at `p`.
    #[inline]
    #[target_feature(enable = "avx")]
    unsafe fn block8(p: *const f32, ss: usize) -> [__m256; 8] {
        // SAFETY: per the caller.
        let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(p.add(i * ss)) });
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    #[test]
    fn every_tier_matches_the_scalar_transpose() {
        let mut rng = Rng::new(5);
        for isa in isa::available_tiers() {
            let t = f32_for(isa);
            for (rows, cols) in [(1, 1), (8, 8), (7, 9), (16, 3), (17, 33), (64, 56)] {
                let (ss, ds) = (cols + 3, rows + 2);
                let src: Vec<f32> = rng.vec(rows * ss, -1.0, 1.0);
                let bias: Vec<f32> = rng.vec(cols, -1.0, 1.0);
                for b in [None, Some(&bias[..])] {
                    let mut want = vec![f32::NAN; cols * ds];
                    let mut got = want.clone();
                    // SAFETY: src holds rows x ss, the outputs cols x ds.
                    unsafe {
                        scalar(src.as_ptr(), ss, want.as_mut_ptr(), ds, (rows, cols), b);
                        t(src.as_ptr(), ss, got.as_mut_ptr(), ds, (rows, cols), b);
                    }
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(g, w)| g.to_bits() == w.to_bits());
                    assert!(same, "{isa} {rows}x{cols} bias {}", b.is_some());
                }
            }
        }
    }
}

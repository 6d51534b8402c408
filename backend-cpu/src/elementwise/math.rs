//! Scalar f64 special functions: `erf` and `erfc` after W. J. Cody's
//! rational Chebyshev approximations ("Rational Chebyshev approximations
//! for the error function", Math. Comp. 23, 1969; the coefficients of his
//! CALERF routine), accurate to a few ulp of f64 everywhere, and the exact
//! GELU (erf form) with its derivative.

/// `erf` on `|x| <= 0.46875`: `x * P(x^2) / Q(x^2)`.
#[allow(
    clippy::excessive_precision,
    reason = "Cody's published coefficients, digit for digit"
)]
const A: [f64; 5] = [
    3.16112374387056560e00,
    1.13864154151050156e02,
    3.77485237685302021e02,
    3.20937758913846947e03,
    1.85777706184603153e-1,
];
/// Denominator of [`A`].
#[allow(
    clippy::excessive_precision,
    reason = "Cody's published coefficients, digit for digit"
)]
const B: [f64; 4] = [
    2.36012909523441209e01,
    2.44024637934444173e02,
    1.28261652607737228e03,
    2.84423683343917062e03,
];
/// `erfc` on `0.46875 < |x| <= 4`: `exp(-x^2) P(x) / Q(x)`.
#[allow(
    clippy::excessive_precision,
    reason = "Cody's published coefficients, digit for digit"
)]
const C: [f64; 9] = [
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
    1.23033935479799725e03,
    2.15311535474403846e-8,
];
/// Denominator of [`C`].
#[allow(
    clippy::excessive_precision,
    reason = "Cody's published coefficients, digit for digit"
)]
const D: [f64; 8] = [
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
    1.23033935480374942e03,
];
/// `erfc` on `|x| > 4`: `exp(-x^2) / x (1/sqrt(pi) + R(1/x^2))`.
#[allow(
    clippy::excessive_precision,
    reason = "Cody's published coefficients, digit for digit"
)]
const P: [f64; 6] = [
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
    1.63153871373020978e-2,
];
/// Denominator of [`P`].
#[allow(
    clippy::excessive_precision,
    reason = "Cody's published coefficients, digit for digit"
)]
const Q: [f64; 5] = [
    2.56852019228982242e00,
    1.87295284992346047e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
];
/// `1 / sqrt(pi)`.
const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;
/// Below this, `erf(x) = 2x/sqrt(pi)` to f64 precision.
const XSMALL: f64 = 1.11e-16;
/// Above this, `erfc(x)` underflows to 0.
const XBIG: f64 = 26.543;

/// `erf(|x|)` when `|x| <= 0.46875`, else `erfc(|x|)`.
fn calerf(x: f64) -> f64 {
    let y = x.abs();
    if y <= 0.46875 {
        let ysq = if y > XSMALL { y * y } else { 0.0 };
        let mut num = A[4] * ysq;
        let mut den = ysq;
        for i in 0..3 {
            num = (num + A[i]) * ysq;
            den = (den + B[i]) * ysq;
        }
        return y * (num + A[3]) / (den + B[3]);
    }
    let r = if y <= 4.0 {
        let mut num = C[8] * y;
        let mut den = y;
        for i in 0..7 {
            num = (num + C[i]) * y;
            den = (den + D[i]) * y;
        }
        (num + C[7]) / (den + D[7])
    } else if y >= XBIG {
        return 0.0;
    } else {
        let ysq = 1.0 / (y * y);
        let mut num = P[5] * ysq;
        let mut den = ysq;
        for i in 0..4 {
            num = (num + P[i]) * ysq;
            den = (den + Q[i]) * ysq;
        }
        (FRAC_1_SQRT_PI - ysq * (num + P[4]) / (den + Q[4])) / y
    };
    // exp(-y^2) without the rounding error of y^2: y = hi + (y - hi) with
    // hi a multiple of 1/16, whose square is exact.
    let hi = (y * 16.0).trunc() / 16.0;
    let del = (y - hi) * (y + hi);
    (-hi * hi).exp() * (-del).exp() * r
}

/// The error function (the kernels need only [`erfc`]; kept for its tests,
/// which check both against tables).
#[cfg(test)]
pub(crate) fn erf(x: f64) -> f64 {
    let r = calerf(x);
    let v = if x.abs() <= 0.46875 {
        r
    } else {
        (0.5 - r) + 0.5
    };
    if x < 0.0 {
        -v
    } else {
        v
    }
}

/// The complementary error function `1 - erf(x)`, accurate in the tail.
pub(crate) fn erfc(x: f64) -> f64 {
    let r = calerf(x);
    if x.abs() <= 0.46875 {
        if x < 0.0 {
            1.0 + r
        } else {
            1.0 - r
        }
    } else if x < 0.0 {
        2.0 - r
    } else {
        r
    }
}

/// `x Phi(x) = x/2 (1 + erf(x / sqrt 2))`, through `erfc` so that the
/// negative tail keeps its relative accuracy.
pub(crate) fn gelu_erf(x: f64) -> f64 {
    0.5 * x * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// `d/dx [x Phi(x)] = Phi(x) + x phi(x)`.
pub(crate) fn gelu_erf_grad(x: f64) -> f64 {
    // 1 / sqrt(2 pi)
    const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
    let cdf = 0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
    cdf + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs()
        }
    }

    #[test]
    #[allow(clippy::excessive_precision, reason = "table values to 20 digits")]
    fn erf_matches_high_precision_values() {
        // Values to 20 digits from tables of the error function.
        let erf_table = [
            (1e-20, 1.128_379_167_095_512_6e-20),
            (0.1, 0.112_462_916_018_284_892_20),
            (0.25, 0.276_326_390_168_236_932_99),
            (0.46875, 0.492_613_473_217_937_991_59),
            (0.5, 0.520_499_877_813_046_537_68),
            (1.0, 0.842_700_792_949_714_869_34),
            (2.0, 0.995_322_265_018_952_734_16),
            (3.5, 0.999_999_256_901_627_658_6),
        ];
        for (x, want) in erf_table {
            assert!(
                rel(erf(x), want) < 1e-15,
                "erf({x}) = {} want {want}",
                erf(x)
            );
            assert!(rel(erf(-x), -want) < 1e-15, "erf(-{x})");
        }
        let erfc_table = [
            (0.5, 0.479_500_122_186_953_462_32),
            (1.0, 0.157_299_207_050_285_130_66),
            (3.0, 2.209_049_699_858_544_137_3e-5),
            (4.0, 1.541_725_790_028_001_885_2e-8),
            (5.0, 1.537_459_794_428_034_850_2e-12),
            (10.0, 2.088_487_583_762_544_757_0e-45),
            (26.0, 5.663_192_408_856_142_846e-296),
        ];
        for (x, want) in erfc_table {
            assert!(
                rel(erfc(x), want) < 1e-14,
                "erfc({x}) = {:e} want {want:e}",
                erfc(x)
            );
            assert!(rel(erfc(-x), 2.0 - want) < 1e-15, "erfc(-{x})");
        }
    }

    #[test]
    fn erf_edges() {
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(f64::INFINITY), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert_eq!(erfc(f64::INFINITY), 0.0);
        assert_eq!(erfc(f64::NEG_INFINITY), 2.0);
        assert_eq!(erfc(30.0), 0.0);
        assert!(erf(f64::NAN).is_nan() && erfc(f64::NAN).is_nan());
        // erf + erfc = 1 across the interval edges.
        for i in 0..2000 {
            let x = -6.0 + i as f64 * 0.006;
            assert!((erf(x) + erfc(x) - 1.0).abs() < 4e-16, "x = {x}");
        }
    }

    #[test]
    fn gelu_erf_derivative_matches_differences() {
        for i in 0..200 {
            let x = -8.0 + i as f64 * 0.08 + 0.013;
            let h = 1e-5;
            let fd = (gelu_erf(x + h) - gelu_erf(x - h)) / (2.0 * h);
            assert!((fd - gelu_erf_grad(x)).abs() < 1e-9, "x = {x}");
        }
    }
}

//! Comparing a device's output with the CPU backend's: the tolerance of
//! each op family and the error measure.
//!
//! An output matches when, for every element,
//! `|device - cpu| <= tol * (|cpu| + 0.1 * max|cpu|)`: relative, with a
//! floor at a tenth of the tensor's largest finite value so that values near
//! zero (where summation order decides the last bits) are held to the
//! tensor's scale. NaN must meet NaN and an infinity the same infinity.

use crate::{DType, Tensor};

/// How closely a family of ops must match (see [`Family::tol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Copies, casts, fill, concat, where, comparisons, index_select,
    /// max/min/argmax, max pooling: bit-exact.
    Exact,
    /// Unary, binary, unary_backward.
    Elementwise,
    /// Reductions, softmax, losses, average pooling, index_add.
    Reduce,
    /// Layer and batch norm.
    Norm,
    /// Matmul and convolution (another summation order is allowed).
    Dense,
}

impl Family {
    /// Every family, in the order the tolerance table lists them.
    pub const ALL: [Family; 5] = [
        Family::Exact,
        Family::Elementwise,
        Family::Reduce,
        Family::Norm,
        Family::Dense,
    ];

    /// Stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Exact => "exact",
            Family::Elementwise => "elementwise",
            Family::Reduce => "reduce",
            Family::Norm => "norm",
            Family::Dense => "dense",
        }
    }

    /// The tolerance for an output of `dtype` (`None`: bit-exact).
    /// Integer and mask outputs are always exact; gradients (through
    /// several kernels) get ten times their family's tolerance, an exact
    /// family's gradients that of elementwise.
    ///
    /// | family | f32 | f64 |
    /// |---|---|---|
    /// | exact | bit-exact | bit-exact |
    /// | elementwise, reduce | 1e-5 | 1e-12 |
    /// | norm, dense | 1e-4 | 1e-10 |
    pub fn tol(self, dtype: DType, grad: bool) -> Option<f64> {
        if !dtype.is_float() {
            return None;
        }
        let f64_ = dtype == DType::F64;
        let base = match (self, grad) {
            (Family::Exact, false) => return None,
            (Family::Exact | Family::Elementwise | Family::Reduce, _) => {
                if f64_ {
                    1e-12
                } else {
                    1e-5
                }
            }
            (Family::Norm | Family::Dense, _) => {
                if f64_ {
                    1e-10
                } else {
                    1e-4
                }
            }
        };
        Some(if grad { base * 10.0 } else { base })
    }
}

/// Host values of any tensor as f64 (exact for every dtype of op set v1).
pub(crate) fn host(t: &Tensor) -> crate::Result<Vec<f64>> {
    Ok(match t.dtype() {
        DType::F32 => t.to_vec::<f32>()?.into_iter().map(f64::from).collect(),
        DType::F64 => t.to_vec::<f64>()?,
        DType::I64 => t.to_vec::<i64>()?.into_iter().map(|v| v as f64).collect(),
        DType::U8 => t.to_vec::<u8>()?.into_iter().map(f64::from).collect(),
    })
}

/// Compares `dev` with `cpu`; returns the largest relative error (0 when
/// exact) or why they differ, naming the element.
pub fn compare(cpu: &Tensor, dev: &Tensor, tol: Option<f64>) -> Result<f64, String> {
    measure(cpu, dev, tol).map_err(|m| m.message)
}

/// Why two outputs differ, with the largest error when it was measured
/// (a tolerance exceeded, rather than a shape, exact or NaN mismatch).
pub(crate) struct Mismatch {
    pub(crate) message: String,
    pub(crate) worst: Option<f64>,
}

impl From<String> for Mismatch {
    fn from(message: String) -> Self {
        Mismatch {
            message,
            worst: None,
        }
    }
}

/// [`compare`], keeping the largest error of a tolerance mismatch.
pub(crate) fn measure(cpu: &Tensor, dev: &Tensor, tol: Option<f64>) -> Result<f64, Mismatch> {
    if cpu.dtype() != dev.dtype() || cpu.shape() != dev.shape() {
        return Err(Mismatch::from(format!(
            "the cpu gives {} {:?}, the device {} {:?}",
            cpu.dtype(),
            cpu.shape(),
            dev.dtype(),
            dev.shape()
        )));
    }
    if cpu.dtype() == DType::I64 {
        let (c, g) = (
            cpu.to_vec::<i64>()
                .map_err(|e| Mismatch::from(e.to_string()))?,
            dev.to_vec::<i64>()
                .map_err(|e| Mismatch::from(e.to_string()))?,
        );
        return match c.iter().zip(&g).position(|(a, b)| a != b) {
            None => Ok(0.0),
            Some(i) => Err(format!(
                "element {i} differs (cpu {}, device {}; exact match required)",
                c[i], g[i]
            )
            .into()),
        };
    }
    let c = host(cpu).map_err(|e| Mismatch::from(e.to_string()))?;
    let g = host(dev).map_err(|e| Mismatch::from(e.to_string()))?;
    let Some(tol) = tol else {
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        return match c.iter().zip(&g).position(|(&a, &b)| !same(a, b)) {
            None => Ok(0.0),
            Some(i) => Err(format!(
                "element {i} differs (cpu {:e}, device {:e}; exact match required)",
                c[i], g[i]
            )
            .into()),
        };
    };
    let scale = c
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0f64, 0usize);
    for (i, (&a, &b)) in c.iter().zip(&g).enumerate() {
        if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
            if a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()) {
                return Err(Mismatch::from(format!(
                    "element {i} differs (cpu {a:e}, device {b:e}; NaN and infinities must match)"
                )));
            }
            continue;
        }
        let err = (a - b).abs() / (a.abs() + 0.1 * scale + f64::MIN_POSITIVE);
        if err > worst {
            (worst, at) = (err, i);
        }
    }
    if worst > tol {
        return Err(Mismatch {
            message: format!(
                "largest error {worst:.2e} at element {at} (cpu {:e}, device {:e}) > tolerance {tol:.0e}",
                c[at], g[at]
            ),
            worst: Some(worst),
        });
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Device;

    #[test]
    fn comparison_has_teeth() {
        let cpu = Device::cpu();
        let t = |v: &[f32]| Tensor::from_slice(v, &[v.len()], &cpu).unwrap();
        let a = t(&[1.0, -2.0, 100.0, 0.0]);
        // Exact: one ulp is a mismatch.
        let ulp = t(&[1.0, f32::from_bits((-2.0f32).to_bits() + 1), 100.0, 0.0]);
        assert!(compare(&a, &a, None).is_ok());
        assert!(compare(&a, &ulp, None).unwrap_err().contains("element 1"));
        // Tolerance: relative to |cpu| plus a tenth of the largest value.
        let near = t(&[1.0 + 1e-6, -2.0, 100.0, 1e-4]);
        let err = compare(&a, &near, Some(1e-5)).unwrap();
        assert!(err > 0.0 && err <= 1e-5, "{err}");
        let far = t(&[1.0, -2.0, 100.0, 0.2]);
        let e = compare(&a, &far, Some(1e-5)).unwrap_err();
        assert!(
            e.starts_with("largest error 2.00e-2 at element 3 (cpu 0e0, device 2"),
            "{e}"
        );
        // Shapes, dtypes, NaN and integers.
        assert!(compare(&a, &t(&[1.0, -2.0, 100.0]), Some(1.0)).is_err());
        assert!(compare(&a, &a.cast(DType::F64).unwrap(), Some(1.0)).is_err());
        assert!(compare(&t(&[f32::NAN]), &t(&[1.0]), Some(1.0)).is_err());
        assert!(compare(&t(&[f32::NAN]), &t(&[f32::NAN]), None).is_ok());
        let i = |v: &[i64]| Tensor::from_slice(v, &[v.len()], &cpu).unwrap();
        assert!(compare(&i(&[1, 2]), &i(&[1, 3]), Some(1.0)).is_err());
    }

    #[test]
    fn tolerances_by_family() {
        assert_eq!(Family::Dense.tol(DType::I64, true), None);
        assert_eq!(Family::Exact.tol(DType::F32, false), None);
        assert_eq!(Family::Exact.tol(DType::F32, true), Some(1e-4));
        assert_eq!(Family::Elementwise.tol(DType::F32, false), Some(1e-5));
        assert!(Family::Dense.tol(DType::F64, false) < Family::Dense.tol(DType::F32, false));
    }
}

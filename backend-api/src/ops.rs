//! Op set v1: append-only numeric op ids, their names, and their params
//! structs. An id is never renumbered or reused; a new op takes the next id.
//!
//! Conventions every backend follows (the host guarantees them):
//! - Elementwise ops (unary, binary, comparisons, `where`, `copy`, `cast`)
//!   receive inputs already broadcast to the output's shape (stride 0 on
//!   broadcast dimensions), so each input has the output's rank and shape.
//! - Reductions keep reduced dimensions with extent 1 in the output.
//! - Outputs never alias inputs, except where an op says it accumulates
//!   or updates in place (`index_add`, `adamw_step`, `sgd_step` and their
//!   `_multi` forms: read, then written).
//! - Outputs are contiguous row-major, except for the elementwise ops
//!   (unary, binary, comparisons, `where`, `fill`, `copy`, `cast`), which
//!   accept any non-overlapping strided output (used for slice assignment),
//!   and for `conv2d` on a device whose attributes list
//!   [`CONV2D_CHANNELS_LAST_OUTPUT`] = `yes`: its output may also be dense
//!   channels-last (`[N, K, OH, OW]` stored as `[N, OH, OW, K]`, strides
//!   `[OH OW K, 1, OW K, K]`). The host asks that of no other device.
//! - Inputs of every op may be strided (transposed, sliced, broadcast).
//! - Ops on f32 also accept f64 wherever the CPU backend lists the pair
//!   (f64 serves references and gradient checks).
//! - Layouts: images NCHW, conv weights `[K, C/groups, R, S]`.

use std::ffi::c_void;

/// The device attribute (value `yes`) by which a backend accepts a dense
/// channels-last output for `conv2d` (see the conventions above).
pub const CONV2D_CHANNELS_LAST_OUTPUT: &str = "conv2d.channels_last_output";

macro_rules! op_ids {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $params:ty, in $nin:literal, out $nout:literal; )*) => {
        /// An op of op set v1. The discriminant is the ABI id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum OpId {
            $( $(#[$doc])* $variant = $id, )*
        }

        impl OpId {
            /// Every op, in id order.
            pub const ALL: &'static [OpId] = &[ $( OpId::$variant, )* ];

            /// The op with ABI id `id`, if this build knows it.
            pub const fn from_u32(id: u32) -> Option<OpId> {
                match id {
                    $( $id => Some(OpId::$variant), )*
                    _ => None,
                }
            }

            /// Stable lower-case name, e.g. `conv2d_backward_data`.
            pub const fn name(self) -> &'static str {
                match self { $( OpId::$variant => $name, )* }
            }

            /// Size of the params struct this op takes (0: none, pass null).
            pub const fn params_size(self) -> usize {
                match self { $( OpId::$variant => params_size::<$params>(), )* }
            }

            /// Number of inputs; `None` when variable (concat).
            pub const fn input_count(self) -> Option<usize> {
                match self { $( OpId::$variant => count($nin), )* }
            }

            /// Number of outputs; `None` when variable (the multi-tensor
            /// optimizer steps).
            pub const fn output_count(self) -> Option<usize> {
                match self { $( OpId::$variant => count($nout), )* }
            }
        }
    };
}

const fn count(n: i32) -> Option<usize> {
    if n < 0 {
        None
    } else {
        Some(n as usize)
    }
}

const fn params_size<T>() -> usize {
    std::mem::size_of::<T>()
}

/// Marker for ops that take no params struct (the pointer is null).
#[derive(Debug, Clone, Copy)]
pub enum NoParams {}

op_ids! {
    /// `y = -x`
    Neg = 1, "neg", NoParams, in 1, out 1;
    /// `y = |x|`
    Abs = 2, "abs", NoParams, in 1, out 1;
    /// `y = e^x`
    Exp = 3, "exp", NoParams, in 1, out 1;
    /// `y = ln x`
    Log = 4, "log", NoParams, in 1, out 1;
    /// `y = sqrt x`
    Sqrt = 5, "sqrt", NoParams, in 1, out 1;
    /// `y = 1 / sqrt x`
    Rsqrt = 6, "rsqrt", NoParams, in 1, out 1;
    /// `y = max(x, 0)`
    Relu = 7, "relu", NoParams, in 1, out 1;
    /// `y = x/2 (1 + erf(x / sqrt 2))`
    GeluErf = 8, "gelu_erf", NoParams, in 1, out 1;
    /// `y = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    GeluTanh = 9, "gelu_tanh", NoParams, in 1, out 1;
    /// `y = 1 / (1 + e^-x)`
    Sigmoid = 10, "sigmoid", NoParams, in 1, out 1;
    /// `y = tanh x`
    Tanh = 11, "tanh", NoParams, in 1, out 1;
    /// `y = x sigmoid(x)`
    Silu = 12, "silu", NoParams, in 1, out 1;
    /// Inputs `(x, dy)`, output `dx = dy * f'(x)` for the unary op named in
    /// [`UnaryBackwardParams`]. `x` is the forward input.
    UnaryBackward = 13, "unary_backward", UnaryBackwardParams, in 2, out 1;
    /// `c = a + b`
    Add = 14, "add", NoParams, in 2, out 1;
    /// `c = a - b`
    Sub = 15, "sub", NoParams, in 2, out 1;
    /// `c = a * b`
    Mul = 16, "mul", NoParams, in 2, out 1;
    /// `c = a / b`
    Div = 17, "div", NoParams, in 2, out 1;
    /// `c = a ^ b`
    Pow = 18, "pow", NoParams, in 2, out 1;
    /// `c = max(a, b)`
    Maximum = 19, "maximum", NoParams, in 2, out 1;
    /// `c = min(a, b)`
    Minimum = 20, "minimum", NoParams, in 2, out 1;
    /// `m = a == b`, output u8 mask.
    Eq = 21, "eq", NoParams, in 2, out 1;
    /// `m = a != b`, output u8 mask.
    Ne = 22, "ne", NoParams, in 2, out 1;
    /// `m = a < b`, output u8 mask.
    Lt = 23, "lt", NoParams, in 2, out 1;
    /// `m = a <= b`, output u8 mask.
    Le = 24, "le", NoParams, in 2, out 1;
    /// `m = a > b`, output u8 mask.
    Gt = 25, "gt", NoParams, in 2, out 1;
    /// `m = a >= b`, output u8 mask.
    Ge = 26, "ge", NoParams, in 2, out 1;
    /// Inputs `(mask u8, a, b)`: `c = mask ? a : b`.
    Where = 27, "where", NoParams, in 3, out 1;
    /// No inputs; every element of the output becomes `value`.
    Fill = 28, "fill", FillParams, in 0, out 1;
    /// Strided copy, same dtype: `out[i] = x[i]` (makes views contiguous).
    Copy = 29, "copy", NoParams, in 1, out 1;
    /// Converting copy between dtypes (float to int truncates toward zero;
    /// to u8 maps nonzero to 1).
    Cast = 30, "cast", NoParams, in 1, out 1;
    /// Any number of inputs joined along `axis` into one output.
    Concat = 31, "concat", AxisParams, in -1, out 1;
    /// Sum over the axes in the mask.
    Sum = 32, "sum", ReduceParams, in 1, out 1;
    /// Mean over the axes in the mask.
    Mean = 33, "mean", ReduceParams, in 1, out 1;
    /// Maximum over the axes in the mask.
    Max = 34, "max", ReduceParams, in 1, out 1;
    /// Minimum over the axes in the mask.
    Min = 35, "min", ReduceParams, in 1, out 1;
    /// Index (i64) of the first maximum along the single axis in the mask.
    Argmax = 36, "argmax", ReduceParams, in 1, out 1;
    /// Batched matmul `c = alpha a b + beta c` on `[.., M, K] x [.., K, N]`.
    /// Transposes are strides; batch dims are broadcast like the output's.
    Matmul = 37, "matmul", MatmulParams, in 2, out 1;
    /// Inputs `(x [N,C,H,W], w [K,C/g,R,S])`, optional third input bias `[K]`.
    Conv2d = 38, "conv2d", Conv2dParams, in -1, out 1;
    /// Inputs `(dy, w)`, output `dx`.
    Conv2dBackwardData = 39, "conv2d_backward_data", Conv2dParams, in 2, out 1;
    /// Inputs `(x, dy)`, output `dw`.
    Conv2dBackwardFilter = 40, "conv2d_backward_filter", Conv2dParams, in 2, out 1;
    /// Input `x`, output `y`.
    MaxPool2d = 41, "max_pool2d", Pool2dParams, in 1, out 1;
    /// Inputs `(x, dy)`, output `dx` (gradient goes to the first maximum).
    MaxPool2dBackward = 42, "max_pool2d_backward", Pool2dParams, in 2, out 1;
    /// Input `x`, output `y`.
    AvgPool2d = 43, "avg_pool2d", Pool2dParams, in 1, out 1;
    /// Input `dy`, output `dx`.
    AvgPool2dBackward = 44, "avg_pool2d_backward", Pool2dParams, in 1, out 1;
    /// Softmax along `axis`.
    Softmax = 45, "softmax", AxisParams, in 1, out 1;
    /// Inputs `(y, dy)` with `y` the forward output; output `dx`.
    SoftmaxBackward = 46, "softmax_backward", AxisParams, in 2, out 1;
    /// Log-softmax along `axis`.
    LogSoftmax = 47, "log_softmax", AxisParams, in 1, out 1;
    /// Inputs `(y, dy)` with `y` the forward output; output `dx`.
    LogSoftmaxBackward = 48, "log_softmax_backward", AxisParams, in 2, out 1;
    /// Inputs `(x, gamma, beta)` normalised over the last `axis` dims... see
    /// [`NormParams`]; outputs `(y, mean, rstd)`, the statistics shaped like
    /// `x` with the normalised dims set to 1.
    LayerNorm = 49, "layer_norm", NormParams, in 3, out 3;
    /// Inputs `(x, gamma, mean, rstd, dy)`; outputs `(dx, dgamma, dbeta)`.
    LayerNormBackward = 50, "layer_norm_backward", NormParams, in 5, out 3;
    /// Training (`params.training = 1`): inputs `(x, gamma, beta)`, outputs
    /// `(y, mean [C], rstd [C])` from batch statistics over N, H, W.
    /// Inference: inputs `(x, gamma, beta, running_mean, running_var)`, output `y`.
    BatchNorm = 51, "batch_norm", NormParams, in -1, out 3;
    /// Inputs `(x, gamma, mean, rstd, dy)`; outputs `(dx, dgamma, dbeta)`.
    BatchNormBackward = 52, "batch_norm_backward", NormParams, in 5, out 3;
    /// Inputs `(table, index i64)`: `out` takes the slices of `table` along
    /// `axis` named by `index`; out shape = table's with `axis` replaced by index's shape.
    IndexSelect = 53, "index_select", AxisParams, in 2, out 1;
    /// Inputs `(index i64, src)`: accumulates `out[.., index[i], ..] += src[.., i, ..]`
    /// along `axis`. Reads and writes `out` (the caller zeroes it first).
    IndexAdd = 54, "index_add", AxisParams, in 2, out 1;
    /// Inputs `(logits [N, C], labels i64 [N])`; output per-sample loss `[N]`
    /// (`-log_softmax(logits)[label]`, 0 where label == ignore_index).
    CrossEntropy = 55, "cross_entropy", CrossEntropyParams, in 2, out 1;
    /// Inputs `(logits, labels, dloss [N])`; output `dlogits [N, C]`.
    CrossEntropyBackward = 56, "cross_entropy_backward", CrossEntropyParams, in 3, out 1;
    /// ABI 1.2. One AdamW step of one parameter, fused: input the gradient
    /// `g`; outputs `(p, m, v)`, the parameter and its first and second
    /// moments, all of one shape and contiguous, read and updated in place:
    /// `p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    /// p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)` (PyTorch's AdamW;
    /// `bc1`, `bc2` the bias corrections `1 - b^t` of this step, given by
    /// the caller; the first step starts from zero moments). `g` may be
    /// strided.
    AdamwStep = 57, "adamw_step", AdamWParams, in 1, out 3;
    /// ABI 1.2. One SGD step of one parameter, fused: input the gradient
    /// `g`; outputs `(p, buf)`, the parameter and its momentum buffer, one
    /// shape, contiguous, read and updated in place: `d = g + wd p`; with
    /// momentum, `buf = d` on the first step (`first_step` 1) else `buf =
    /// momentum buf + (1 - dampening) d`, then `d = d + momentum buf`
    /// (Nesterov) or `d = buf`; `p -= lr d` (PyTorch's SGD). Without
    /// momentum `buf` is neither read nor written. `g` may be strided.
    SgdStep = 58, "sgd_step", SgdParams, in 1, out 2;
    /// ABI 1.3. One AdamW step of `n >= 1` parameters in one call, each as
    /// `adamw_step` with the same params (one step count for all): inputs
    /// the `n` gradients `g_0 .. g_{n-1}`; outputs `3n`, the triples
    /// `(p_i, m_i, v_i)` in the gradients' order. One dtype throughout;
    /// shapes may differ between parameters; no two tensors overlap.
    AdamwStepMulti = 59, "adamw_step_multi", AdamWParams, in -1, out -1;
    /// ABI 1.3. One SGD step of `n >= 1` parameters in one call, each as
    /// `sgd_step` with the same params: inputs the `n` gradients; outputs
    /// `2n`, the pairs `(p_i, buf_i)` in the gradients' order (without
    /// momentum `buf_i` is not looked at; the host passes an empty tensor).
    /// One dtype throughout; shapes may differ between parameters.
    SgdStepMulti = 60, "sgd_step_multi", SgdParams, in -1, out -1;
}

impl OpId {
    /// True for the twelve elementwise unary ops (`neg` to `silu`).
    pub const fn is_unary(self) -> bool {
        (self as u32) >= OpId::Neg as u32 && (self as u32) <= OpId::Silu as u32
    }

    /// True for the seven arithmetic binary ops (`add` to `minimum`).
    pub const fn is_binary(self) -> bool {
        (self as u32) >= OpId::Add as u32 && (self as u32) <= OpId::Minimum as u32
    }

    /// True when the (op, dtype) pair is keyed on the op's output dtype
    /// rather than its first input's: `index_add`, whose first input is
    /// always the i64 index (and `fill`, which has no input).
    pub const fn keyed_on_output(self) -> bool {
        matches!(self, OpId::IndexAdd | OpId::Fill)
    }

    /// For the four optimizer-step ops, `(adamw, multi)`: AdamW (three
    /// outputs per parameter) or SGD (two), and the multi-tensor form or
    /// the one-parameter op; `None` for every other op.
    pub const fn optimizer_step(self) -> Option<(bool, bool)> {
        match self {
            OpId::AdamwStep => Some((true, false)),
            OpId::AdamwStepMulti => Some((true, true)),
            OpId::SgdStep => Some((false, false)),
            OpId::SgdStepMulti => Some((false, true)),
            _ => None,
        }
    }

    /// True for the six comparisons (`eq` to `ge`).
    pub const fn is_comparison(self) -> bool {
        (self as u32) >= OpId::Eq as u32 && (self as u32) <= OpId::Ge as u32
    }
}

impl std::fmt::Display for OpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Params of `unary_backward` (SR_OP_UNARY_BACKWARD).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UnaryBackwardParams {
    /// sizeof(SrUnaryBackwardParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Id of the forward unary op, SR_OP_NEG to SR_OP_SILU.
    pub op: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Params of `fill` (SR_OP_FILL).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FillParams {
    /// sizeof(SrFillParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// The value, converted to the output dtype (to an integer: truncated
    /// toward zero and saturated, NaN to 0).
    pub value: f64,
}

/// Params of the ops along one axis: `concat`, `softmax`, `log_softmax` and
/// their backward ops, `index_select`, `index_add`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AxisParams {
    /// sizeof(SrAxisParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Axis, 0 to rank - 1 (never negative across the ABI).
    pub axis: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Params of the reductions `sum`, `mean`, `max`, `min`, `argmax`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ReduceParams {
    /// sizeof(SrReduceParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Bit k set: reduce over axis k (argmax: exactly one bit).
    pub axes_mask: u64,
}

/// Params of `matmul`: c = alpha * a b + beta * c.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MatmulParams {
    /// sizeof(SrMatmulParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Scale of the product.
    pub alpha: f64,
    /// Scale of the prior output (0: the output is not read, so NaN there
    /// does not propagate).
    pub beta: f64,
}

/// Params of `conv2d`, `conv2d_backward_data`, `conv2d_backward_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Conv2dParams {
    /// sizeof(SrConv2dParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Stride (h, w), >= 1.
    pub stride: [i64; 2],
    /// Zero padding (h, w) on both sides, >= 0.
    pub padding: [i64; 2],
    /// Dilation (h, w), >= 1.
    pub dilation: [i64; 2],
    /// Groups, >= 1, dividing C and K.
    pub groups: i64,
}

/// Params of `max_pool2d`, `avg_pool2d` and their backward ops.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Pool2dParams {
    /// sizeof(SrPool2dParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Window (h, w), >= 1.
    pub kernel: [i64; 2],
    /// Stride (h, w), >= 1.
    pub stride: [i64; 2],
    /// Padding (h, w), >= 0, at most half the window.
    pub padding: [i64; 2],
    /// Average pooling: 1 counts padded positions in the divisor, 0 divides
    /// by the real elements of the window only.
    pub count_include_pad: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Params of `layer_norm`, `batch_norm` and their backward ops.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NormParams {
    /// sizeof(SrNormParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Added to the variance.
    pub eps: f64,
    /// layer_norm: the number of trailing dims normalised over (gamma and
    /// beta have their shape). batch_norm: the channel axis (1).
    pub axis: u32,
    /// batch_norm: 1 for batch statistics (training), 0 for running
    /// statistics (inference). layer_norm: unused, 0.
    pub training: u32,
}

/// Params of `cross_entropy` and `cross_entropy_backward`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyParams {
    /// sizeof(SrCrossEntropyParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.0 and ignores fields it does not know.
    pub struct_size: u64,
    /// Samples with this label contribute zero loss and zero gradient.
    pub ignore_index: i64,
}

/// Params of `adamw_step` (ABI 1.2). Computed in the tensors' dtype.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AdamWParams {
    /// sizeof(SrAdamWParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.2 and ignores fields it does not know.
    pub struct_size: u64,
    /// Learning rate of this step.
    pub lr: f64,
    /// First-moment decay `b1`.
    pub beta1: f64,
    /// Second-moment decay `b2`.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// `1 - b1^t` for this step `t` (1-based).
    pub bias_correction1: f64,
    /// `1 - b2^t`.
    pub bias_correction2: f64,
}

/// Params of `sgd_step` (ABI 1.2). Computed in the tensors' dtype.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SgdParams {
    /// sizeof(SrSgdParams) as the caller compiled it; a backend accepts any size
    /// at least that of ABI 1.2 and ignores fields it does not know.
    pub struct_size: u64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Momentum factor (0: none).
    pub momentum: f64,
    /// Dampening of the momentum.
    pub dampening: f64,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f64,
    /// 1 for Nesterov momentum, else 0.
    pub nesterov: u32,
    /// 1 when the momentum buffer is not yet initialised (the first step:
    /// it becomes the gradient), else 0.
    pub first_step: u32,
}

impl AdamWParams {
    /// Checks the fields a backend relies on (every backend makes the same
    /// checks with the same messages): `lr`, `eps`, `weight_decay` finite
    /// and at least 0, the betas in [0, 1), the bias corrections in (0, 1].
    pub fn check(&self) -> crate::Result<()> {
        nonnegative(
            "adamw_step",
            &[
                ("lr", self.lr),
                ("eps", self.eps),
                ("weight_decay", self.weight_decay),
            ],
        )?;
        for (what, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(out_of_range("adamw_step", what, v));
            }
        }
        for (what, v) in [
            ("bias_correction1", self.bias_correction1),
            ("bias_correction2", self.bias_correction2),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(out_of_range("adamw_step", what, v));
            }
        }
        Ok(())
    }
}

impl SgdParams {
    /// Checks the fields a backend relies on: `lr`, `momentum`,
    /// `dampening`, `weight_decay` finite and at least 0, the flags 0 or 1,
    /// Nesterov only with momentum and without dampening.
    pub fn check(&self) -> crate::Result<()> {
        nonnegative(
            "sgd_step",
            &[
                ("lr", self.lr),
                ("momentum", self.momentum),
                ("dampening", self.dampening),
                ("weight_decay", self.weight_decay),
            ],
        )?;
        if self.nesterov > 1 || self.first_step > 1 {
            return Err(crate::BackendError::invalid(
                "sgd_step: nesterov and first_step must be 0 or 1",
            ));
        }
        if self.nesterov == 1 && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(crate::BackendError::invalid(
                "sgd_step: Nesterov momentum needs momentum > 0 and dampening 0",
            ));
        }
        Ok(())
    }
}

fn out_of_range(op: &str, what: &str, v: f64) -> crate::BackendError {
    crate::BackendError::invalid(format!("{op}: {what} {v} is out of range"))
}

fn nonnegative(op: &str, fields: &[(&str, f64)]) -> crate::Result<()> {
    match fields.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
        Some(&(what, v)) => Err(out_of_range(op, what, v)),
        None => Ok(()),
    }
}

/// The in-place rule of the optimizer ops (`adamw_step`, `sgd_step`): the
/// outputs, `bytes` long each at the given addresses, overlap neither one
/// another nor the gradient (`g`: its address when contiguous; a strided
/// gradient is copied before anything is written).
pub fn check_disjoint(
    op: &str,
    bytes: u64,
    g: Option<u64>,
    outs: &[(&str, u64)],
) -> crate::Result<()> {
    let overlap = |a: u64, b: u64| bytes > 0 && a < b + bytes && b < a + bytes;
    for (i, &(_, a)) in outs.iter().enumerate() {
        if outs[i + 1..].iter().any(|&(_, b)| overlap(a, b)) {
            let names: Vec<&str> = outs.iter().map(|o| o.0).collect();
            return Err(crate::BackendError::invalid(format!(
                "{op}: {} must not overlap",
                names.join(", ")
            )));
        }
        if g.is_some_and(|g| overlap(g, a)) {
            return Err(crate::BackendError::invalid(format!(
                "{op}: g must not overlap the outputs"
            )));
        }
    }
    Ok(())
}

/// The parameter count of a call of a multi-tensor optimizer step
/// (`adamw_step_multi`, `sgd_step_multi`): `inputs` gradients and `per`
/// outputs for each (3 for AdamW, 2 for SGD). Errors unless there is at
/// least one gradient and exactly `per` outputs for each.
pub fn multi_step_count(
    op: &str,
    inputs: usize,
    outputs: usize,
    per: usize,
) -> crate::Result<usize> {
    if inputs == 0 || outputs != inputs * per {
        return Err(crate::BackendError::invalid(format!(
            "{op}: expected n >= 1 gradients and {per} outputs for each, got {inputs} inputs and {outputs} outputs"
        )));
    }
    Ok(inputs)
}

/// Checks that no two of the byte ranges `(what, start, len)` overlap
/// (empty ranges never do); `what` names each range in the error. Used
/// across the parameters of a multi-tensor optimizer step.
pub fn check_ranges_disjoint(op: &str, ranges: &[(String, u64, u64)]) -> crate::Result<()> {
    let mut live: Vec<&(String, u64, u64)> = ranges.iter().filter(|r| r.2 > 0).collect();
    live.sort_by_key(|r| r.1);
    for w in live.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.1 + a.2 > b.1 {
            return Err(crate::BackendError::invalid(format!(
                "{op}: {} and {} must not overlap",
                a.0, b.0
            )));
        }
    }
    Ok(())
}

/// The params of one op call, typed. Built by the host, read by backends
/// through [`Params::from_raw`].
#[derive(Debug, Clone, Copy)]
pub enum Params {
    /// The op takes none.
    None,
    /// `unary_backward`.
    UnaryBackward(UnaryBackwardParams),
    /// `fill`.
    Fill(FillParams),
    /// Axis ops.
    Axis(AxisParams),
    /// Reductions.
    Reduce(ReduceParams),
    /// `matmul`.
    Matmul(MatmulParams),
    /// Conv2d family.
    Conv2d(Conv2dParams),
    /// Pool2d family.
    Pool2d(Pool2dParams),
    /// Norm family.
    Norm(NormParams),
    /// Cross-entropy pair.
    CrossEntropy(CrossEntropyParams),
    /// `adamw_step`.
    AdamW(AdamWParams),
    /// `sgd_step`.
    Sgd(SgdParams),
}

macro_rules! params_struct_size {
    ($($t:ty),*) => {$(
        impl $t {
            /// This struct's size, for `struct_size`.
            pub const SIZE: u64 = std::mem::size_of::<$t>() as u64;
        }
    )*};
}
params_struct_size!(
    UnaryBackwardParams,
    FillParams,
    AxisParams,
    ReduceParams,
    MatmulParams,
    Conv2dParams,
    Pool2dParams,
    NormParams,
    CrossEntropyParams,
    AdamWParams,
    SgdParams
);

/// Why a params pointer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// The op takes params but the pointer is null.
    Missing,
    /// `struct_size` is smaller than version 1.0 of the struct.
    TooSmall {
        /// What the caller said.
        got: u64,
        /// What version 1.0 needs.
        need: u64,
    },
}

impl std::fmt::Display for ParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamsError::Missing => f.write_str("params pointer is null"),
            ParamsError::TooSmall { got, need } => {
                write!(f, "params struct_size {got} is smaller than {need}")
            }
        }
    }
}

/// Reads a `T` whose first field is `struct_size`, accepting a larger
/// (newer) struct. Fields a newer writer appended are ignored.
///
/// # Safety
/// `ptr` must be null or point to a readable struct of at least the size
/// its own `struct_size` says.
unsafe fn read_sized<T: Copy>(ptr: *const c_void) -> Result<T, ParamsError> {
    if ptr.is_null() {
        return Err(ParamsError::Missing);
    }
    // SAFETY: the caller guarantees at least 8 readable bytes (struct_size).
    let got = unsafe { std::ptr::read_unaligned(ptr as *const u64) };
    let need = std::mem::size_of::<T>() as u64;
    if got < need {
        return Err(ParamsError::TooSmall { got, need });
    }
    // SAFETY: the struct is at least `need` bytes long, checked above.
    Ok(unsafe { std::ptr::read_unaligned(ptr as *const T) })
}

impl Params {
    /// Reads the params of `op` from the raw pointer passed to `execute`.
    ///
    /// # Safety
    /// `ptr` must be null or point to a struct that starts with a correct
    /// `struct_size`.
    pub unsafe fn from_raw(op: OpId, ptr: *const c_void) -> Result<Params, ParamsError> {
        use OpId::*;
        // SAFETY: forwarded from the caller for every arm.
        unsafe {
            Ok(match op {
                UnaryBackward => Params::UnaryBackward(read_sized(ptr)?),
                Fill => Params::Fill(read_sized(ptr)?),
                Concat | Softmax | SoftmaxBackward | LogSoftmax | LogSoftmaxBackward
                | IndexSelect | IndexAdd => Params::Axis(read_sized(ptr)?),
                Sum | Mean | Max | Min | Argmax => Params::Reduce(read_sized(ptr)?),
                Matmul => Params::Matmul(read_sized(ptr)?),
                Conv2d | Conv2dBackwardData | Conv2dBackwardFilter => {
                    Params::Conv2d(read_sized(ptr)?)
                }
                MaxPool2d | MaxPool2dBackward | AvgPool2d | AvgPool2dBackward => {
                    Params::Pool2d(read_sized(ptr)?)
                }
                LayerNorm | LayerNormBackward | BatchNorm | BatchNormBackward => {
                    Params::Norm(read_sized(ptr)?)
                }
                CrossEntropy | CrossEntropyBackward => Params::CrossEntropy(read_sized(ptr)?),
                AdamwStep | AdamwStepMulti => Params::AdamW(read_sized(ptr)?),
                SgdStep | SgdStepMulti => Params::Sgd(read_sized(ptr)?),
                _ => Params::None,
            })
        }
    }

    /// Pointer to pass across the ABI (null for [`Params::None`]); borrowed
    /// from `self`.
    pub fn as_ptr(&self) -> *const c_void {
        match self {
            Params::None => std::ptr::null(),
            Params::UnaryBackward(p) => p as *const _ as *const c_void,
            Params::Fill(p) => p as *const _ as *const c_void,
            Params::Axis(p) => p as *const _ as *const c_void,
            Params::Reduce(p) => p as *const _ as *const c_void,
            Params::Matmul(p) => p as *const _ as *const c_void,
            Params::Conv2d(p) => p as *const _ as *const c_void,
            Params::Pool2d(p) => p as *const _ as *const c_void,
            Params::Norm(p) => p as *const _ as *const c_void,
            Params::CrossEntropy(p) => p as *const _ as *const c_void,
            Params::AdamW(p) => p as *const _ as *const c_void,
            Params::Sgd(p) => p as *const _ as *const c_void,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_step_counts_need_whole_groups_of_outputs() {
        assert_eq!(multi_step_count("x", 2, 6, 3).unwrap(), 2);
        assert_eq!(multi_step_count("x", 1, 2, 2).unwrap(), 1);
        for (i, o) in [(0, 0), (2, 5), (2, 7), (1, 2)] {
            assert!(multi_step_count("x", i, o, 3).is_err(), "{i} in, {o} out");
        }
    }

    #[test]
    fn ranges_overlap_only_when_they_share_a_byte() {
        let r = |v: &[(u64, u64)]| -> Vec<(String, u64, u64)> {
            v.iter()
                .enumerate()
                .map(|(i, &(a, n))| (format!("t{i}"), a, n))
                .collect()
        };
        assert!(check_ranges_disjoint("x", &r(&[(100, 8), (0, 100), (108, 4)])).is_ok());
        // Empty ranges never overlap, not even inside another range.
        assert!(check_ranges_disjoint("x", &r(&[(0, 16), (4, 0), (16, 4)])).is_ok());
        let e = check_ranges_disjoint("x", &r(&[(0, 16), (4, 0), (40, 4), (15, 1)]));
        assert!(e.unwrap_err().message.contains("t0 and t3"));
        assert!(check_ranges_disjoint("x", &r(&[(0, 100), (50, 1), (99, 8)])).is_err());
    }

    #[test]
    fn ids_are_dense_unique_and_round_trip() {
        for (i, op) in OpId::ALL.iter().enumerate() {
            assert_eq!(*op as u32, i as u32 + 1, "{op} is out of order");
            assert_eq!(OpId::from_u32(*op as u32), Some(*op));
        }
        assert_eq!(OpId::from_u32(0), None);
        assert_eq!(OpId::from_u32(OpId::ALL.len() as u32 + 1), None);
    }

    #[test]
    fn params_accept_newer_and_reject_older_structs() {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Newer {
            base: FillParams,
            extra: u64,
        }
        let newer = Newer {
            base: FillParams {
                struct_size: std::mem::size_of::<Newer>() as u64,
                value: 2.5,
            },
            extra: 7,
        };
        // SAFETY: points at a live struct with a correct struct_size.
        let p = unsafe { Params::from_raw(OpId::Fill, &newer as *const _ as *const c_void) };
        assert!(matches!(p, Ok(Params::Fill(f)) if f.value == 2.5));
        let older = FillParams {
            struct_size: 8,
            value: 1.0,
        };
        // SAFETY: as above.
        let p = unsafe { Params::from_raw(OpId::Fill, &older as *const _ as *const c_void) };
        assert_eq!(p.unwrap_err(), ParamsError::TooSmall { got: 8, need: 16 });
        // SAFETY: null is allowed.
        let p = unsafe { Params::from_raw(OpId::Fill, std::ptr::null()) };
        assert_eq!(p.unwrap_err(), ParamsError::Missing);
    }
}

//! The ONNX ops this crate runs, each lowered onto the core's op front end
//! (so every backend runs them, and an op a backend lacks falls back like
//! any other). One function per op family file: [`elementwise`],
//! [`shape`], [`nn`], [`reduce`].

mod elementwise;
mod nn;
mod pad;
mod reduce;
mod resize;
mod shape;

use sunrise::{DType, Device, Tensor};

use crate::attrs::Attrs;
use crate::error::{Error, Result};
use crate::proto::NodeProto;

/// Every op type of the default domain that [`crate::Model::run`] runs.
#[rustfmt::skip]
pub const SUPPORTED_OPS: &[&str] = &[
    // elementwise
    "Abs", "Add", "And", "Clip", "Div", "Elu", "Equal", "Erf", "Exp", "Gelu", "Greater",
    "GreaterOrEqual", "HardSigmoid", "HardSwish", "LeakyRelu", "Less", "LessOrEqual", "Log",
    "Max", "Mean", "Min", "Mul", "Neg", "Not", "Or", "Pow", "PRelu", "Reciprocal", "Relu",
    "Selu", "Sigmoid", "Softplus", "Softsign", "Sqrt", "Sub", "Sum", "Tanh", "Where", "Xor",
    // shape and data movement
    "Cast", "CastLike", "Concat", "Constant", "ConstantOfShape", "Dropout", "Expand", "Flatten",
    "Gather", "GatherElements", "Identity", "Pad", "Range", "Reshape", "Resize", "Shape", "Size",
    "Slice", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze", "Upsample",
    // nn
    "AveragePool", "BatchNormalization", "Conv", "ConvTranspose", "Gemm", "GlobalAveragePool", "GlobalMaxPool",
    "InstanceNormalization", "LayerNormalization", "LogSoftmax", "LRN", "MatMul", "MaxPool",
    "Softmax",
    // reductions
    "ArgMax", "ArgMin", "CumSum", "TopK", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum",
];

/// [`SUPPORTED_OPS`] as a slice.
pub fn supported_ops() -> &'static [&'static str] {
    SUPPORTED_OPS
}

/// What an op function sees: the node's attributes, the opset, its inputs
/// (`None` for an omitted optional input) and the device.
pub(crate) struct Ctx<'a> {
    pub(crate) attrs: Attrs<'a>,
    pub(crate) opset: i64,
    pub(crate) args: &'a [Option<Tensor>],
    pub(crate) device: &'a Device,
    /// How many outputs the node names.
    pub(crate) outputs: usize,
}

impl Ctx<'_> {
    /// Required input `i`.
    pub(crate) fn input(&self, i: usize) -> Result<&Tensor> {
        self.args.get(i).and_then(Option::as_ref).ok_or_else(|| {
            Error::invalid(&self.attrs.at, format!("input {i} is required but missing"))
        })
    }

    /// Optional input `i`.
    pub(crate) fn opt(&self, i: usize) -> Option<&Tensor> {
        self.args.get(i).and_then(Option::as_ref)
    }

    /// Input `i` read to the host as integers (shapes, axes, indices).
    pub(crate) fn ints(&self, i: usize) -> Result<Option<Vec<i64>>> {
        self.opt(i)
            .map(|t| host_ints(t, &self.attrs.at))
            .transpose()
    }

    /// An error about this node.
    pub(crate) fn invalid(&self, detail: impl std::fmt::Display) -> Error {
        Error::invalid(&self.attrs.at, detail.to_string())
    }

    /// An unsupported case of this node.
    pub(crate) fn unsupported(&self, detail: impl std::fmt::Display) -> Error {
        Error::unsupported(&self.attrs.at, detail.to_string())
    }

    /// `axis` (may be negative) as an index into `rank` dims.
    pub(crate) fn axis(&self, axis: i64, rank: usize) -> Result<usize> {
        let r = rank as i64;
        if axis < -r || axis >= r.max(1) {
            return Err(self.invalid(format!("axis {axis} is out of range for rank {rank}")));
        }
        Ok(if axis < 0 { axis + r } else { axis } as usize)
    }
}

/// Most elements a tensor made at run time from a model's numbers
/// (ConstantOfShape, Expand, Tile, Range, Pad) may have: 2^30 (4 GiB of
/// f32), so a hostile shape is an error rather than an allocation that
/// takes the process down.
pub(crate) const MAX_MADE_ELEMENTS: usize = 1 << 30;

/// Refuses shapes of more than [`MAX_MADE_ELEMENTS`] elements.
pub(crate) fn check_made(c: &Ctx<'_>, shape: &[usize]) -> Result<()> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n <= MAX_MADE_ELEMENTS => Ok(()),
        _ => Err(c.invalid(format!(
            "shape {shape:?} exceeds {MAX_MADE_ELEMENTS} elements"
        ))),
    }
}

/// NumPy broadcasting of two shapes.
pub(crate) fn broadcast_shape(c: &Ctx<'_>, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            (x, y) => Err(c.invalid(format!(
                "shapes {a:?} and {b:?} do not broadcast ({x} vs {y})"
            ))),
        })
        .collect()
}

/// An integer tensor's values on the host.
pub(crate) fn host_ints(t: &Tensor, at: &str) -> Result<Vec<i64>> {
    match t.dtype() {
        DType::I64 => Ok(t.to_vec::<i64>()?),
        DType::U8 => Ok(t.to_vec::<u8>()?.into_iter().map(i64::from).collect()),
        d => Err(Error::invalid(
            at,
            format!("expected an integer tensor, got {d}"),
        )),
    }
}

/// A u8 tensor's values as i64 (through the host: the core's cast treats
/// u8 as a 0/1 mask).
pub(crate) fn widen_u8(t: &Tensor) -> Result<Tensor> {
    let v: Vec<i64> = t.to_vec::<u8>()?.into_iter().map(i64::from).collect();
    Ok(Tensor::from_slice(&v, t.shape(), t.device())?)
}

/// An i64 tensor's values wrapped to u8 (ONNX's uint8 arithmetic wraps).
pub(crate) fn wrap_u8(t: &Tensor) -> Result<Tensor> {
    let v: Vec<u8> = t.to_vec::<i64>()?.into_iter().map(|x| x as u8).collect();
    Ok(Tensor::from_slice(&v, t.shape(), t.device())?)
}

/// Runs one node; core errors are reported with the node's name and op.
pub(crate) fn run(
    node: &NodeProto,
    opset: i64,
    args: &[Option<Tensor>],
    device: &Device,
) -> Result<Vec<Tensor>> {
    let attrs = Attrs::new(node);
    if !matches!(node.domain(), "" | "ai.onnx") {
        return Err(Error::unsupported(
            &attrs.at,
            format!("domain {:?} (only the default ONNX domain)", node.domain()),
        ));
    }
    // Opset 6 differs from 7 in the legacy broadcast attributes of the
    // binary ops (handled there); before 6 several ops changed more.
    if opset < 6 {
        return Err(Error::unsupported(
            &attrs.at,
            format!("opset {opset} (6 and later)"),
        ));
    }
    let ctx = Ctx {
        attrs,
        opset,
        args,
        device,
        outputs: node.output.len(),
    };
    let out = dispatch(node.op_type(), &ctx).map_err(|e| match e {
        Error::Core(source) => Error::Node {
            node: match node.name() {
                "" => node.output.first().cloned().unwrap_or_default(),
                n => n.to_string(),
            },
            op: node.op_type().to_string(),
            source,
        },
        e => e,
    })?;
    Ok(out)
}

fn dispatch(op: &str, c: &Ctx<'_>) -> Result<Vec<Tensor>> {
    if let Some(r) = elementwise::run(op, c) {
        return r;
    }
    if let Some(r) = shape::run(op, c) {
        return r;
    }
    if let Some(r) = nn::run(op, c) {
        return r;
    }
    if let Some(r) = reduce::run(op, c) {
        return r;
    }
    if op == "Pad" {
        return pad::run(c);
    }
    if op == "Resize" || op == "Upsample" {
        return resize::run(op, c);
    }
    Err(c.unsupported(format!("op {op:?} is not implemented")))
}

/// One output.
pub(crate) fn one(t: Tensor) -> Result<Vec<Tensor>> {
    Ok(vec![t])
}

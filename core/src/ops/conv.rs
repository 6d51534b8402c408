//! 2-D convolution and pooling on NCHW tensors.

use sunrise_backend_api::ops::{Conv2dParams, Pool2dParams};
use sunrise_backend_api::{OpId, Params};

use super::run;
use crate::autograd::grad_fns;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Options of a 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Stride (h, w).
    pub stride: [usize; 2],
    /// Zero padding (h, w).
    pub padding: [usize; 2],
    /// Dilation (h, w).
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Options of a 2-D pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// Window (h, w).
    pub kernel: [usize; 2],
    /// Stride (h, w).
    pub stride: [usize; 2],
    /// Padding (h, w).
    pub padding: [usize; 2],
    /// Average pooling: count padded positions in the divisor.
    pub count_include_pad: bool,
}

impl Pool2dOptions {
    /// Window `k`, stride `k`, no padding.
    pub fn square(k: usize) -> Self {
        Pool2dOptions {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
            count_include_pad: false,
        }
    }
}

fn out_extent(op: &'static str, n: usize, k: usize, s: usize, p: usize, d: usize) -> Result<usize> {
    let span = d * (k.max(1) - 1) + 1;
    if s == 0 || d == 0 || k == 0 || n + 2 * p < span {
        return Err(Error::invalid(
            op,
            format!(
                "input {n} with window {k}, stride {s}, padding {p}, dilation {d} gives no output"
            ),
        ));
    }
    Ok((n + 2 * p - span) / s + 1)
}

impl Conv2dOptions {
    fn params(&self) -> Params {
        let i = |v: [usize; 2]| [v[0] as i64, v[1] as i64];
        Params::Conv2d(Conv2dParams {
            struct_size: Conv2dParams::SIZE,
            stride: i(self.stride),
            padding: i(self.padding),
            dilation: i(self.dilation),
            groups: self.groups as i64,
        })
    }

    /// Output shape of a convolution of `x` by `w`, after checking both.
    pub fn output_shape(&self, op: &'static str, x: &[usize], w: &[usize]) -> Result<Vec<usize>> {
        if x.len() != 4 || w.len() != 4 {
            return Err(Error::shape(
                op,
                format!("x {x:?} and w {w:?} must both be rank 4 (NCHW, KCRS)"),
            ));
        }
        let g = self.groups;
        if g == 0 || !x[1].is_multiple_of(g) || !w[0].is_multiple_of(g) || w[1] * g != x[1] {
            return Err(Error::shape(
                op,
                format!("groups {g}: x has {} channels, w is {w:?}", x[1]),
            ));
        }
        let h = out_extent(
            op,
            x[2],
            w[2],
            self.stride[0],
            self.padding[0],
            self.dilation[0],
        )?;
        let wd = out_extent(
            op,
            x[3],
            w[3],
            self.stride[1],
            self.padding[1],
            self.dilation[1],
        )?;
        Ok(vec![x[0], w[0], h, wd])
    }
}

impl Pool2dOptions {
    fn params(&self) -> Params {
        let i = |v: [usize; 2]| [v[0] as i64, v[1] as i64];
        Params::Pool2d(Pool2dParams {
            struct_size: Pool2dParams::SIZE,
            kernel: i(self.kernel),
            stride: i(self.stride),
            padding: i(self.padding),
            count_include_pad: self.count_include_pad as u32,
            reserved: 0,
        })
    }

    fn output_shape(&self, op: &'static str, x: &[usize]) -> Result<Vec<usize>> {
        if x.len() != 4 {
            return Err(Error::shape(op, format!("x {x:?} must be rank 4 (NCHW)")));
        }
        for k in 0..2 {
            if 2 * self.padding[k] > self.kernel[k] {
                return Err(Error::invalid(
                    op,
                    "padding must be at most half the window",
                ));
            }
        }
        let h = out_extent(op, x[2], self.kernel[0], self.stride[0], self.padding[0], 1)?;
        let w = out_extent(op, x[3], self.kernel[1], self.stride[1], self.padding[1], 1)?;
        Ok(vec![x[0], x[1], h, w])
    }
}

impl Tensor {
    /// Convolution of `self` (NCHW) by `weight` (K, C/groups, R, S), plus an
    /// optional `bias` (K).
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &Conv2dOptions,
    ) -> Result<Tensor> {
        self.expect_float("conv2d")?;
        weight.expect_dtype("conv2d", self.dtype())?;
        let shape = opts.output_shape("conv2d", self.shape(), weight.shape())?;
        // A channels-last input gives a channels-last output where the
        // device writes one (see `Tensor::to_channels_last`).
        let cl = self.is_channels_last() && self.device().writes_channels_last_conv();
        let out = Tensor::alloc_format(&shape, self.dtype(), self.device(), cl)?;
        match bias {
            Some(b) => {
                b.expect_dtype("conv2d", self.dtype())?;
                if b.shape() != [shape[1]] {
                    return Err(Error::shape(
                        "conv2d",
                        format!("bias {:?} must be [{}]", b.shape(), shape[1]),
                    ));
                }
                run(OpId::Conv2d, opts.params(), &[self, weight, b], &[&out])?;
            }
            None => run(OpId::Conv2d, opts.params(), &[self, weight], &[&out])?,
        }
        Ok(grad_fns::conv2d(self, weight, bias, opts, out))
    }

    /// Gradient of a convolution with respect to its input of `x_shape`.
    pub fn conv2d_backward_data(
        dy: &Tensor,
        weight: &Tensor,
        x_shape: &[usize],
        opts: &Conv2dOptions,
    ) -> Result<Tensor> {
        dy.expect_float("conv2d_backward_data")?;
        weight.expect_dtype("conv2d_backward_data", dy.dtype())?;
        let y = opts.output_shape("conv2d_backward_data", x_shape, weight.shape())?;
        if dy.shape() != y.as_slice() {
            return Err(Error::shape(
                "conv2d_backward_data",
                format!("dy {:?} must be {y:?}", dy.shape()),
            ));
        }
        let dx = Tensor::alloc(x_shape, dy.dtype(), dy.device())?;
        run(
            OpId::Conv2dBackwardData,
            opts.params(),
            &[dy, weight],
            &[&dx],
        )?;
        Ok(dx)
    }

    /// Gradient of a convolution with respect to its weight of `w_shape`.
    pub fn conv2d_backward_filter(
        x: &Tensor,
        dy: &Tensor,
        w_shape: &[usize],
        opts: &Conv2dOptions,
    ) -> Result<Tensor> {
        x.expect_float("conv2d_backward_filter")?;
        dy.expect_dtype("conv2d_backward_filter", x.dtype())?;
        let y = opts.output_shape("conv2d_backward_filter", x.shape(), w_shape)?;
        if dy.shape() != y.as_slice() {
            return Err(Error::shape(
                "conv2d_backward_filter",
                format!("dy {:?} must be {y:?}", dy.shape()),
            ));
        }
        let dw = Tensor::alloc(w_shape, x.dtype(), x.device())?;
        run(OpId::Conv2dBackwardFilter, opts.params(), &[x, dy], &[&dw])?;
        Ok(dw)
    }

    fn pool(&self, op: OpId, opts: &Pool2dOptions) -> Result<Tensor> {
        self.expect_float(op.name())?;
        let shape = opts.output_shape(op.name(), self.shape())?;
        let out = Tensor::alloc(&shape, self.dtype(), self.device())?;
        run(op, opts.params(), &[self], &[&out])?;
        Ok(grad_fns::pool2d(op, self, opts, out))
    }

    /// Max pooling.
    pub fn max_pool2d(&self, opts: &Pool2dOptions) -> Result<Tensor> {
        self.pool(OpId::MaxPool2d, opts)
    }

    /// Average pooling.
    pub fn avg_pool2d(&self, opts: &Pool2dOptions) -> Result<Tensor> {
        self.pool(OpId::AvgPool2d, opts)
    }

    /// Gradient of max pooling: `x` the forward input, `dy` the output gradient.
    pub fn max_pool2d_backward(x: &Tensor, dy: &Tensor, opts: &Pool2dOptions) -> Result<Tensor> {
        let y = opts.output_shape("max_pool2d_backward", x.shape())?;
        dy.expect_dtype("max_pool2d_backward", x.dtype())?;
        if dy.shape() != y.as_slice() {
            return Err(Error::shape(
                "max_pool2d_backward",
                format!("dy {:?} must be {y:?}", dy.shape()),
            ));
        }
        let dx = Tensor::alloc(x.shape(), x.dtype(), x.device())?;
        run(OpId::MaxPool2dBackward, opts.params(), &[x, dy], &[&dx])?;
        Ok(dx)
    }

    /// Gradient of average pooling for an input of `x_shape`.
    pub fn avg_pool2d_backward(
        dy: &Tensor,
        x_shape: &[usize],
        opts: &Pool2dOptions,
    ) -> Result<Tensor> {
        dy.expect_float("avg_pool2d_backward")?;
        let y = opts.output_shape("avg_pool2d_backward", x_shape)?;
        if dy.shape() != y.as_slice() {
            return Err(Error::shape(
                "avg_pool2d_backward",
                format!("dy {:?} must be {y:?}", dy.shape()),
            ));
        }
        let dx = Tensor::alloc(x_shape, dy.dtype(), dy.device())?;
        run(OpId::AvgPool2dBackward, opts.params(), &[dy], &[&dx])?;
        Ok(dx)
    }

    /// Mean over H and W of an NCHW tensor, keeping them as 1x1.
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        if self.rank() != 4 {
            return Err(Error::shape(
                "global_avg_pool2d",
                format!("{:?} must be rank 4", self.shape()),
            ));
        }
        self.mean(&[2, 3], true)
    }
}

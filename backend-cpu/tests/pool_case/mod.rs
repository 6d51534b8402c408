//! One pooling configuration and the geometry both pool test binaries
//! (`pool.rs`, `pool_paths.rs`) check against: output shape, params, and
//! the real input positions of each window.

use sunrise_backend_api::ops::Pool2dParams;
use sunrise_backend_api::Params;

/// Input `[N, C, H, W]`, window, stride, padding, `count_include_pad`.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub nchw: [usize; 4],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub include_pad: bool,
}

pub const fn case(
    nchw: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    include_pad: bool,
) -> Case {
    Case {
        nchw,
        kernel,
        stride,
        pad,
        include_pad,
    }
}

impl Case {
    pub fn out_shape(&self) -> [usize; 4] {
        let o =
            |a: usize| (self.nchw[2 + a] + 2 * self.pad[a] - self.kernel[a]) / self.stride[a] + 1;
        [self.nchw[0], self.nchw[1], o(0), o(1)]
    }

    pub fn params(&self) -> Params {
        let i = |v: [usize; 2]| [v[0] as i64, v[1] as i64];
        Params::Pool2d(Pool2dParams {
            struct_size: Pool2dParams::SIZE,
            kernel: i(self.kernel),
            stride: i(self.stride),
            padding: i(self.pad),
            count_include_pad: self.include_pad as u32,
            reserved: 0,
        })
    }

    /// The real input positions `(ih, iw)` of window `(oh, ow)`, row-major.
    pub fn window(&self, oh: usize, ow: usize) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for r in 0..self.kernel[0] {
            for s in 0..self.kernel[1] {
                let ih = (oh * self.stride[0] + r) as isize - self.pad[0] as isize;
                let iw = (ow * self.stride[1] + s) as isize - self.pad[1] as isize;
                if (0..self.nchw[2] as isize).contains(&ih)
                    && (0..self.nchw[3] as isize).contains(&iw)
                {
                    v.push((ih as usize, iw as usize));
                }
            }
        }
        v
    }
}

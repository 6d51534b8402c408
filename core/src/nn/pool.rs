//! Pooling layers.

use super::module::{Mode, Module};
use crate::error::Result;
use crate::ops::Pool2dOptions;
use crate::tensor::Tensor;

macro_rules! pool_layer {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            opts: Pool2dOptions,
            mode: Mode,
        }

        impl $name {
            /// Pooling with the given window, stride and padding.
            pub fn new(opts: Pool2dOptions) -> $name {
                $name {
                    opts,
                    mode: Mode::default(),
                }
            }

            /// A `k` x `k` window with stride `k` and no padding
            /// (PyTorch's default stride is the window).
            pub fn square(k: usize) -> $name {
                $name::new(Pool2dOptions::square(k))
            }

            /// The window, stride and padding.
            pub fn options(&self) -> &Pool2dOptions {
                &self.opts
            }
        }

        impl Module for $name {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                x.$method(&self.opts)
            }

            fn named_parameters(&self) -> Vec<(String, Tensor)> {
                Vec::new()
            }

            fn set_training(&self, training: bool) {
                self.mode.set(training);
            }

            fn is_training(&self) -> bool {
                self.mode.get()
            }
        }
    };
}

pool_layer!(
    /// 2-D max pooling over NCHW input (`torch.nn.MaxPool2d`).
    MaxPool2d,
    max_pool2d
);

pool_layer!(
    /// 2-D average pooling over NCHW input (`torch.nn.AvgPool2d`).
    AvgPool2d,
    avg_pool2d
);

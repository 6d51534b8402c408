//! Convolution, pooling, softmax, normalisation, index_select and
//! cross-entropy.

use super::check::{gradcheck, i64s, rand};
use sunrise::{Conv2dOptions, Pool2dOptions, Tensor};

#[test]
fn conv2d_with_stride_padding_dilation_groups_and_bias() {
    let opts = Conv2dOptions {
        stride: [2, 1],
        padding: [1, 1],
        dilation: [1, 2],
        groups: 2,
    };
    let x = rand(&[2, 4, 6, 5], -1.0, 1.0, 300);
    let w = rand(&[6, 2, 3, 2], -1.0, 1.0, 301);
    let b = rand(&[6], -1.0, 1.0, 302);
    gradcheck("conv2d grouped", &[&x, &w, &b], |t| {
        t[0].conv2d(&t[1], Some(&t[2]), &opts)
    });
    let x = rand(&[1, 3, 5, 5], -1.0, 1.0, 303);
    let w = rand(&[2, 3, 3, 3], -1.0, 1.0, 304);
    gradcheck("conv2d plain, strided gradient", &[&x, &w], |t| {
        t[0].conv2d(&t[1], None, &Conv2dOptions::default())?
            .permute(&[3, 1, 0, 2])
    });
}

#[test]
fn max_and_avg_pooling() {
    let x = rand(&[2, 2, 5, 6], -1.0, 1.0, 310);
    let overlapping = Pool2dOptions {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        count_include_pad: false,
    };
    gradcheck("max_pool2d", &[&x], |t| t[0].max_pool2d(&overlapping));
    gradcheck("max_pool2d square", &[&x], |t| {
        t[0].max_pool2d(&Pool2dOptions::square(2))
    });
    for count_include_pad in [false, true] {
        let o = Pool2dOptions {
            count_include_pad,
            ..overlapping
        };
        gradcheck("avg_pool2d", &[&x], |t| t[0].avg_pool2d(&o));
    }
    gradcheck("global_avg_pool2d", &[&x], |t| t[0].global_avg_pool2d());
}

#[test]
fn softmax_and_log_softmax() {
    let x = rand(&[3, 4, 2], -2.0, 2.0, 320);
    for axis in [0, 1, -1] {
        gradcheck("softmax", &[&x], |t| t[0].softmax(axis));
        gradcheck("log_softmax", &[&x], |t| t[0].log_softmax(axis));
    }
}

#[test]
fn layer_norm_in_x_gamma_and_beta() {
    let x = rand(&[2, 3, 4], -1.0, 1.0, 330);
    for shape in [&[4][..], &[3, 4]] {
        let g = rand(shape, 0.5, 1.5, 331);
        let b = rand(shape, -0.5, 0.5, 332);
        gradcheck("layer_norm", &[&x, &g, &b], |t| {
            Ok(t[0].layer_norm(&t[1], &t[2], 1e-5)?.y)
        });
    }
}

#[test]
fn batch_norm_training_and_inference() {
    let x = rand(&[3, 2, 2, 3], -1.0, 1.0, 340);
    let g = rand(&[2], 0.5, 1.5, 341);
    let b = rand(&[2], -0.5, 0.5, 342);
    gradcheck("batch_norm_train", &[&x, &g, &b], |t| {
        Ok(t[0].batch_norm_train(&t[1], &t[2], 1e-5)?.y)
    });
    let mean = rand(&[2], -0.2, 0.2, 343);
    let var = rand(&[2], 0.5, 1.5, 344);
    gradcheck("batch_norm_infer", &[&x, &g, &b], |t| {
        t[0].batch_norm_infer(&t[1], &t[2], &mean, &var, 1e-5)
    });
}

#[test]
fn index_select_accumulates_repeated_indices() {
    let table = rand(&[5, 3], -1.0, 1.0, 350);
    let rows = i64s(&[4, 0, 4, 2, 4, 1], &[2, 3]);
    gradcheck("index_select rows", &[&table], |t| {
        t[0].index_select(0, &rows)
    });
    let cols = i64s(&[2, 2, 0], &[3]);
    gradcheck("index_select columns", &[&table], |t| {
        t[0].index_select(1, &cols)
    });
}

#[test]
fn cross_entropy_with_an_ignored_label() {
    let logits = rand(&[4, 5], -2.0, 2.0, 360);
    let labels = i64s(&[3, -100, 0, 4], &[4]);
    gradcheck("cross_entropy", &[&logits], |t| {
        Tensor::cross_entropy(&t[0], &labels, -100)
    });
    gradcheck("mean cross_entropy after log_softmax", &[&logits], |t| {
        Tensor::cross_entropy(&t[0].log_softmax(1)?, &labels, -100)?.mean_all()
    });
}

//! Channels-last memory format: `to_channels_last` keeps values and shape,
//! `conv2d` and elementwise ops keep the format, results and gradients
//! equal those of the NCHW path, and `contiguous` converts back.

use sunrise::{Conv2dOptions, DType, Device, Pool2dOptions, Tensor};

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed, DType::F32, &Device::cpu()).unwrap()
}

/// Equal up to f32 rounding of sums of a few hundred terms (the bias is
/// added before the sum on one path and after it on the other); a layout
/// mistake moves values by O(1).
fn close(a: &Tensor, b: &Tensor) {
    close_to(a, b, 2e-4)
}

fn close_to(a: &Tensor, b: &Tensor, tol: f32) {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

#[test]
fn conversion_keeps_values_and_shape() {
    let x = rand(&[2, 5, 3, 4], 1);
    let cl = x.to_channels_last().unwrap();
    assert!(cl.is_channels_last() && !cl.is_contiguous());
    assert_eq!(cl.shape(), x.shape());
    assert_eq!(cl.strides(), &[60, 1, 20, 5]);
    assert_eq!(cl.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    let back = cl.contiguous().unwrap();
    assert!(back.is_contiguous() && !back.is_channels_last());
    assert_eq!(back.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    // Already channels-last: the same tensor.
    assert!(cl.to_channels_last().unwrap().shares_storage(&cl));
}

#[test]
fn only_rank_4_converts() {
    let err = rand(&[3, 4], 2).to_channels_last().unwrap_err();
    assert!(err.to_string().contains("rank-4"), "{err}");
}

/// conv -> relu -> + bias-like broadcast -> conv, in both formats.
fn block(x: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor, shift: &Tensor) -> Tensor {
    let p1 = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    let p2 = Conv2dOptions {
        stride: [2, 2],
        padding: [1, 1],
        ..Default::default()
    };
    let y = x.conv2d(w1, Some(b1), &p1).unwrap().relu().unwrap();
    let y = y.add(shift).unwrap();
    y.conv2d(w2, None, &p2).unwrap()
}

#[test]
fn the_format_flows_through_a_block_with_equal_results_and_gradients() {
    // 64 output channels: the AVX2/AVX-512 blocked kernels' whole tiles.
    let (x, w1, b1) = (
        rand(&[2, 16, 9, 11], 3),
        rand(&[64, 16, 3, 3], 4),
        rand(&[64], 5),
    );
    let (w2, shift) = (rand(&[64, 64, 3, 3], 6), rand(&[1, 64, 1, 1], 7));
    let want = block(&x, &w1, &b1, &w2, &shift);

    let xc = x.to_channels_last().unwrap();
    let p = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    let y1 = xc.conv2d(&w1, Some(&b1), &p).unwrap();
    assert!(
        y1.is_channels_last(),
        "conv2d keeps channels-last on the CPU"
    );
    let r = y1.relu().unwrap();
    assert!(r.is_channels_last(), "unary ops keep the format");
    assert!(
        r.add(&shift).unwrap().is_channels_last(),
        "so do broadcasts onto it"
    );
    let pooled = r.max_pool2d(&Pool2dOptions::square(2)).unwrap();
    close(
        &pooled,
        &y1.contiguous()
            .unwrap()
            .relu()
            .unwrap()
            .max_pool2d(&Pool2dOptions::square(2))
            .unwrap(),
    );
    let got = block(&xc, &w1, &b1, &w2, &shift);
    assert!(got.is_channels_last());
    close(&got, &want);

    // Gradients through the conversion equal those of the NCHW path.
    let grads = |x: &Tensor, cl: bool| {
        let x = x.detach().set_requires_grad(true);
        let w = w1.detach().set_requires_grad(true);
        let input = if cl {
            x.to_channels_last().unwrap()
        } else {
            x.clone()
        };
        let y = block(&input, &w, &b1, &w2, &shift);
        y.mul(&y).unwrap().sum_all().unwrap().backward().unwrap();
        (x.grad().unwrap(), w.grad().unwrap())
    };
    let (gx, gw) = grads(&x, false);
    let (gxc, gwc) = grads(&x, true);
    // Sums over every pixel of products that cancel: looser.
    close_to(&gxc, &gx, 2e-3);
    close_to(&gwc, &gw, 2e-3);
}

#[test]
fn mixed_formats_give_nchw() {
    let a = rand(&[1, 8, 4, 4], 8);
    let b = rand(&[1, 8, 4, 4], 9);
    let s = a.to_channels_last().unwrap().add(&b).unwrap();
    assert!(!s.is_channels_last());
    close(&s, &a.add(&b).unwrap());
}

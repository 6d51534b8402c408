//! The transformer encoder block: PyTorch names and shapes, and forward
//! values against a direct host implementation of
//! `torch.nn.TransformerEncoderLayer(batch_first=True)` (post- and
//! pre-norm, masks).

use std::collections::HashMap;

use sunrise::nn::{
    ActivationKind, Module, MultiheadAttention, TransformerConfig, TransformerEncoderBlock,
};
use sunrise::{DType, Error, Tensor};

use super::{assert_close, init64, randv, t64, vals};

type Params = HashMap<String, Vec<f64>>;

fn linear(x: &[f64], w: &[f64], b: &[f64], inp: usize) -> Vec<f64> {
    let out = b.len();
    x.chunks(inp)
        .flat_map(|row| {
            (0..out).map(move |o| b[o] + (0..inp).map(|i| row[i] * w[o * inp + i]).sum::<f64>())
        })
        .collect()
}

fn layer_norm(x: &[f64], g: &[f64], b: &[f64]) -> Vec<f64> {
    let d = g.len();
    x.chunks(d)
        .flat_map(|row| {
            let m = row.iter().sum::<f64>() / d as f64;
            let v = row.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / d as f64;
            let r = 1.0 / (v + 1e-5).sqrt();
            (0..d).map(move |i| (row[i] - m) * r * g[i] + b[i])
        })
        .collect()
}

/// Self-attention of x [b, t, e]; `blocked(i, j)` hides key j from query i.
fn attention(
    x: &[f64],
    dims: [usize; 4],
    p: &Params,
    blocked: &dyn Fn(usize, usize) -> bool,
) -> Vec<f64> {
    let [b, t, e, h] = dims;
    let d = e / h;
    let qkv = linear(
        x,
        &p["self_attn.in_proj_weight"],
        &p["self_attn.in_proj_bias"],
        e,
    );
    let at = |bi: usize, ti: usize, part: usize, hi: usize, di: usize| {
        qkv[(bi * t + ti) * 3 * e + part * e + hi * d + di]
    };
    let mut o = vec![0.0; b * t * e];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..t {
                let s: Vec<f64> = (0..t)
                    .map(|j| {
                        if blocked(i, j) {
                            return f64::NEG_INFINITY;
                        }
                        (0..d)
                            .map(|k| at(bi, i, 0, hi, k) * at(bi, j, 1, hi, k))
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
                let z: f64 = ex.iter().sum();
                for k in 0..d {
                    o[(bi * t + i) * e + hi * d + k] =
                        (0..t).map(|j| ex[j] / z * at(bi, j, 2, hi, k)).sum::<f64>();
                }
            }
        }
    }
    linear(
        &o,
        &p["self_attn.out_proj.weight"],
        &p["self_attn.out_proj.bias"],
        e,
    )
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn mlp(x: &[f64], e: usize, f: usize, p: &Params) -> Vec<f64> {
    let h: Vec<f64> = linear(x, &p["linear1.weight"], &p["linear1.bias"], e)
        .into_iter()
        .map(|v| v.max(0.0))
        .collect();
    linear(&h, &p["linear2.weight"], &p["linear2.bias"], f)
}

fn reference(
    x: &[f64],
    dims: [usize; 4],
    f: usize,
    p: &Params,
    norm_first: bool,
    blocked: &dyn Fn(usize, usize) -> bool,
) -> Vec<f64> {
    let e = dims[2];
    let n1 = |v: &[f64]| layer_norm(v, &p["norm1.weight"], &p["norm1.bias"]);
    let n2 = |v: &[f64]| layer_norm(v, &p["norm2.weight"], &p["norm2.bias"]);
    if norm_first {
        let x = add(x, &attention(&n1(x), dims, p, blocked));
        add(&x, &mlp(&n2(&x), e, f, p))
    } else {
        let x = n1(&add(x, &attention(x, dims, p, blocked)));
        n2(&add(&x, &mlp(&x, e, f, p)))
    }
}

fn host_params(m: &dyn Module) -> Params {
    m.state_dict()
        .iter()
        .map(|(n, t)| (n.clone(), vals(t)))
        .collect()
}

/// Gives the LayerNorms non-trivial scales and shifts.
fn perturb_norms(m: &dyn Module) {
    for (i, (name, t)) in m.state_dict().iter().enumerate() {
        if name.starts_with("norm") {
            let v: Vec<f64> = randv(t.numel(), 100 + i as u64)
                .iter()
                .map(|r| 1.0 + 0.5 * r)
                .collect();
            sunrise::no_grad(|| t.assign(&t64(&v, t.shape()))).unwrap();
        }
    }
}

#[test]
fn block_has_pytorch_names_and_shapes() {
    let cfg = TransformerConfig::new(16, 4);
    let block = TransformerEncoderBlock::new(&cfg, &mut init64(0)).unwrap();
    let got: Vec<(String, Vec<usize>)> = block
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("self_attn.in_proj_weight", vec![48, 16]),
        ("self_attn.in_proj_bias", vec![48]),
        ("self_attn.out_proj.weight", vec![16, 16]),
        ("self_attn.out_proj.bias", vec![16]),
        ("linear1.weight", vec![2048, 16]),
        ("linear1.bias", vec![2048]),
        ("linear2.weight", vec![16, 2048]),
        ("linear2.bias", vec![16]),
        ("norm1.weight", vec![16]),
        ("norm1.bias", vec![16]),
        ("norm2.weight", vec![16]),
        ("norm2.bias", vec![16]),
    ];
    let got: Vec<(&str, Vec<usize>)> = got.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(block.named_parameters().len(), 12);
    // PyTorch's initialisation: zero attention biases, Xavier in_proj.
    let p = host_params(&block);
    assert!(p["self_attn.in_proj_bias"].iter().all(|&v| v == 0.0));
    assert!(p["self_attn.out_proj.bias"].iter().all(|&v| v == 0.0));
    let xb = (6.0f64 / (48.0 + 16.0)).sqrt();
    assert!(p["self_attn.in_proj_weight"].iter().all(|v| v.abs() <= xb));
}

#[test]
fn block_forward_matches_host_reference_post_and_pre_norm() {
    let (b, t, e, h, f) = (2, 5, 8, 2, 12);
    let x = randv(b * t * e, 21);
    for norm_first in [false, true] {
        let cfg = TransformerConfig {
            dim_feedforward: f,
            norm_first,
            ..TransformerConfig::new(e, h)
        };
        let block = TransformerEncoderBlock::new(&cfg, &mut init64(7)).unwrap();
        perturb_norms(&block);
        block.eval();
        let y = block.forward(&t64(&x, &[b, t, e])).unwrap();
        assert_eq!(y.shape(), &[b, t, e]);
        let want = reference(
            &x,
            [b, t, e, h],
            f,
            &host_params(&block),
            norm_first,
            &|_, _| false,
        );
        assert_close(&vals(&y), &want, 1e-10);
        // Training with dropout 0.1 differs; the mode switch is undone by eval.
        block.train();
        let yt = vals(&block.forward(&t64(&x, &[b, t, e])).unwrap());
        assert!(yt.iter().zip(&want).any(|(a, w)| (a - w).abs() > 1e-6));
    }
}

#[test]
fn attention_masks_block_keys() {
    let (b, t, e, h, f) = (1, 4, 6, 3, 10);
    let cfg = TransformerConfig {
        dim_feedforward: f,
        dropout: 0.0,
        ..TransformerConfig::new(e, h)
    };
    let block = TransformerEncoderBlock::new(&cfg, &mut init64(3)).unwrap();
    let x = randv(b * t * e, 5);
    let causal: Vec<u8> = (0..t * t).map(|k| u8::from(k % t > k / t)).collect();
    let mask = Tensor::from_slice(&causal, &[t, t], &sunrise::Device::cpu()).unwrap();
    let y = block
        .forward_masked(&t64(&x, &[b, t, e]), Some(&mask))
        .unwrap();
    let want = reference(&x, [b, t, e, h], f, &host_params(&block), false, &|i, j| {
        j > i
    });
    assert_close(&vals(&y), &want, 1e-10);
    // The same as an additive float mask.
    let add: Vec<f64> = causal
        .iter()
        .map(|&c| if c == 1 { f64::NEG_INFINITY } else { 0.0 })
        .collect();
    let y2 = block
        .forward_masked(&t64(&x, &[b, t, e]), Some(&t64(&add, &[t, t])))
        .unwrap();
    assert_eq!(vals(&y2), vals(&y));
    let f32_mask = Tensor::zeros(&[t, t], DType::F32, &sunrise::Device::cpu()).unwrap();
    assert!(block
        .forward_masked(&t64(&x, &[b, t, e]), Some(&f32_mask))
        .is_err());
}

#[test]
fn attention_checks_its_shapes() {
    let mut ini = init64(0);
    assert!(matches!(
        MultiheadAttention::new(10, 3, 0.0, &mut ini),
        Err(Error::InvalidArgument { .. })
    ));
    let cfg = TransformerConfig {
        activation: ActivationKind::Gelu,
        ..TransformerConfig::new(8, 2)
    };
    let block = TransformerEncoderBlock::new(&cfg, &mut ini).unwrap();
    assert!(matches!(
        block.forward(&t64(&[0.0; 12], &[1, 2, 6])),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(block.forward(&t64(&[0.0; 8], &[1, 8])).is_err());
    let mha = block.self_attn();
    assert_eq!((mha.embed_dim(), mha.num_heads()), (8, 2));
}

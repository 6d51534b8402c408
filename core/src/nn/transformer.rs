//! Multi-head self-attention and the transformer encoder block, built from
//! matmul, reshape, permute and softmax.

use sunrise_backend_api::DType;

use super::activation::{Activation, ActivationKind};
use super::dropout::Dropout;
use super::init::{self, Init};
use super::linear::Linear;
use super::module::{param, prefixed, Mode, Module};
use super::norm::LayerNorm;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Multi-head self-attention on `[B, T, E]` input
/// (`torch.nn.MultiheadAttention(batch_first=True)` with query = key =
/// value): `in_proj_weight` `[3E, E]` (query, key, value rows),
/// `in_proj_bias` `[3E]`, and `out_proj` a [`Linear`] `E -> E`. Dropout
/// applies to the attention weights in training mode.
#[derive(Debug)]
pub struct MultiheadAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: Linear,
    num_heads: usize,
    dropout: Dropout,
    mode: Mode,
}

impl MultiheadAttention {
    /// `embed_dim` split over `num_heads` heads (which must divide it),
    /// initialised as PyTorch does: Xavier-uniform input projection, zero
    /// biases, default `Linear` weight for the output projection.
    pub fn new(
        embed_dim: usize,
        num_heads: usize,
        dropout: f64,
        init: &mut Init,
    ) -> Result<MultiheadAttention> {
        if num_heads == 0 || !embed_dim.is_multiple_of(num_heads) {
            return Err(Error::invalid(
                "MultiheadAttention",
                format!("{num_heads} heads must divide the embedding dim {embed_dim}"),
            ));
        }
        let in_proj_weight = init::xavier_uniform(init, &[3 * embed_dim, embed_dim], 1.0)?;
        let in_proj_bias = init::zeros(init, &[3 * embed_dim])?;
        let w = init::default_weight(init, &[embed_dim, embed_dim])?;
        let out_proj = Linear::from_parts(w, Some(init::zeros(init, &[embed_dim])?))?;
        Ok(MultiheadAttention {
            in_proj_weight: param(in_proj_weight),
            in_proj_bias: param(in_proj_bias),
            out_proj,
            num_heads,
            dropout: Dropout::new(dropout, init.next_seed())?,
            mode: Mode::default(),
        })
    }

    /// The embedding dim `E`.
    pub fn embed_dim(&self) -> usize {
        self.in_proj_weight.shape()[1]
    }

    /// Number of heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// Self-attention of `x` `[B, T, E]`. `attn_mask`, broadcastable to
    /// `[B, heads, T, T]`, is either a float mask added to the attention
    /// scores (`-inf` blocks) or a u8 mask where nonzero blocks, as in
    /// PyTorch.
    pub fn forward_masked(&self, x: &Tensor, attn_mask: Option<&Tensor>) -> Result<Tensor> {
        let e = self.embed_dim();
        if x.rank() != 3 || x.shape()[2] != e {
            return Err(Error::shape(
                "MultiheadAttention",
                format!("input {:?} must be [B, T, {e}]", x.shape()),
            ));
        }
        let (b, t, h) = (x.shape()[0], x.shape()[1], self.num_heads);
        let d = e / h;
        let qkv = x
            .matmul(&self.in_proj_weight.t()?)?
            .add(&self.in_proj_bias)?
            .reshape(&[b, t, 3, h, d])?
            .permute(&[2, 0, 3, 1, 4])?; // [3, B, H, T, D]
        let part = |i: usize| qkv.narrow(0, i, 1)?.squeeze(0);
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let mut scores = q
            .mul_scalar(1.0 / (d as f64).sqrt())?
            .matmul(&k.transpose(-2, -1)?)?; // [B, H, T, T]
        if let Some(mask) = attn_mask {
            scores = scores.add(&additive_mask(mask, &scores)?)?;
        }
        let attn = self.dropout.forward(&scores.softmax(-1)?)?;
        let o = attn
            .matmul(&v)? // [B, H, T, D]
            .permute(&[0, 2, 1, 3])?
            .reshape(&[b, t, e])?;
        self.out_proj.forward(&o)
    }
}

/// A float mask as it is, a u8 mask as `-inf` where nonzero and 0 elsewhere.
fn additive_mask(mask: &Tensor, scores: &Tensor) -> Result<Tensor> {
    if mask.dtype() != DType::U8 {
        mask.expect_dtype("MultiheadAttention mask", scores.dtype())?;
        return Ok(mask.clone());
    }
    let neg = scores.scalar_like(f64::NEG_INFINITY)?;
    let zero = scores.scalar_like(0.0)?;
    Tensor::where_(mask, &neg, &zero)
}

impl Module for MultiheadAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, None)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![
            ("in_proj_weight".to_string(), self.in_proj_weight.clone()),
            ("in_proj_bias".to_string(), self.in_proj_bias.clone()),
        ];
        v.extend(prefixed("out_proj", self.out_proj.named_parameters()));
        v
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
        self.out_proj.set_training(training);
        self.dropout.set_training(training);
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}

/// Settings of a [`TransformerEncoderBlock`], with PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerConfig {
    /// Embedding dim `E`.
    pub d_model: usize,
    /// Attention heads (dividing `d_model`).
    pub nhead: usize,
    /// Hidden width of the MLP (PyTorch default 2048).
    pub dim_feedforward: usize,
    /// Dropout probability (default 0.1).
    pub dropout: f64,
    /// MLP activation (default ReLU).
    pub activation: ActivationKind,
    /// LayerNorm epsilon (default 1e-5).
    pub layer_norm_eps: f64,
    /// Normalise before attention and MLP (pre-norm) instead of after
    /// the residual additions (post-norm, the default).
    pub norm_first: bool,
}

impl TransformerConfig {
    /// `d_model` and `nhead` with PyTorch's defaults for the rest.
    pub fn new(d_model: usize, nhead: usize) -> TransformerConfig {
        TransformerConfig {
            d_model,
            nhead,
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: ActivationKind::Relu,
            layer_norm_eps: 1e-5,
            norm_first: false,
        }
    }
}

/// A transformer encoder layer on `[B, T, E]` input
/// (`torch.nn.TransformerEncoderLayer(batch_first=True)`): self-attention
/// and a two-layer MLP, each with dropout, a residual connection and a
/// LayerNorm, after (default) or before (`norm_first`) the sublayer.
#[derive(Debug)]
pub struct TransformerEncoderBlock {
    self_attn: MultiheadAttention,
    linear1: Linear,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    dropout: Dropout,
    dropout1: Dropout,
    dropout2: Dropout,
    activation: Activation,
    norm_first: bool,
    mode: Mode,
}

impl TransformerEncoderBlock {
    /// A block with `config`, initialised as PyTorch does.
    pub fn new(config: &TransformerConfig, init: &mut Init) -> Result<TransformerEncoderBlock> {
        let (e, f) = (config.d_model, config.dim_feedforward);
        let self_attn = MultiheadAttention::new(e, config.nhead, config.dropout, init)?;
        let linear1 = Linear::new(e, f, init)?;
        let linear2 = Linear::new(f, e, init)?;
        let eps = config.layer_norm_eps;
        let norm1 = LayerNorm::with_options(&[e], eps, true, init)?;
        let norm2 = LayerNorm::with_options(&[e], eps, true, init)?;
        let p = config.dropout;
        Ok(TransformerEncoderBlock {
            self_attn,
            linear1,
            linear2,
            norm1,
            norm2,
            dropout: Dropout::new(p, init.next_seed())?,
            dropout1: Dropout::new(p, init.next_seed())?,
            dropout2: Dropout::new(p, init.next_seed())?,
            activation: Activation::new(config.activation),
            norm_first: config.norm_first,
            mode: Mode::default(),
        })
    }

    /// The attention sublayer.
    pub fn self_attn(&self) -> &MultiheadAttention {
        &self.self_attn
    }

    fn sa_block(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.dropout1
            .forward(&self.self_attn.forward_masked(x, mask)?)
    }

    fn ff_block(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.forward(&self.linear1.forward(x)?)?;
        let h = self.linear2.forward(&self.dropout.forward(&h)?)?;
        self.dropout2.forward(&h)
    }

    /// The block applied to `x` `[B, T, E]` with an attention mask (see
    /// [`MultiheadAttention::forward_masked`]).
    pub fn forward_masked(&self, x: &Tensor, attn_mask: Option<&Tensor>) -> Result<Tensor> {
        if self.norm_first {
            let x = x.add(&self.sa_block(&self.norm1.forward(x)?, attn_mask)?)?;
            x.add(&self.ff_block(&self.norm2.forward(&x)?)?)
        } else {
            let x = self.norm1.forward(&x.add(&self.sa_block(x, attn_mask)?)?)?;
            self.norm2.forward(&x.add(&self.ff_block(&x)?)?)
        }
    }

    fn children(&self) -> [(&'static str, &dyn Module); 9] {
        [
            ("self_attn", &self.self_attn),
            ("linear1", &self.linear1),
            ("dropout", &self.dropout),
            ("linear2", &self.linear2),
            ("norm1", &self.norm1),
            ("norm2", &self.norm2),
            ("dropout1", &self.dropout1),
            ("dropout2", &self.dropout2),
            ("activation", &self.activation),
        ]
    }
}

impl Module for TransformerEncoderBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, None)
    }

    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.children()
            .into_iter()
            .flat_map(|(n, m)| prefixed(n, m.named_parameters()))
            .collect()
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
        for (_, m) in self.children() {
            m.set_training(training);
        }
    }

    fn is_training(&self) -> bool {
        self.mode.get()
    }
}

//! A plain multi-layer perceptron: Linear + ReLU per layer, optional dropout.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::linear::{linear, Linear};

#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    dropout: f32,
    out_dim: usize,
}

impl Mlp {
    /// Layers named `0`, `1`, ... under `vb`. With no widths it is the identity.
    pub fn new(in_dim: usize, widths: &[usize], dropout: f32, vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::with_capacity(widths.len());
        let mut d = in_dim;
        for (i, &w) in widths.iter().enumerate() {
            layers.push(linear(d, w, vb.pp(i.to_string()))?);
            d = w;
        }
        Ok(Self { layers, dropout, out_dim: d })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = xs.clone();
        for layer in &self.layers {
            x = layer.forward_relu(&x)?;
            if train && self.dropout > 0.0 {
                x = candle_nn::ops::dropout(&x, self.dropout)?;
            }
        }
        Ok(x)
    }
}

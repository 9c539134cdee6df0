//! A projection head (SimCLR): Linear layers with ReLU between them and a linear last
//! layer, mapping a task representation into the space where InfoNCE compares it. The
//! ReLU tower outputs themselves are nearly collinear across instances, which leaves the
//! cosine similarity with almost no spread; a linear last layer restores it.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::linear::{linear, Linear};
use crate::nn::relu::relu;

#[derive(Clone, Debug)]
pub struct Projection {
    layers: Vec<Linear>,
}

impl Projection {
    pub fn new(in_dim: usize, widths: &[usize], vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::with_capacity(widths.len());
        let mut d = in_dim;
        for (i, &w) in widths.iter().enumerate() {
            layers.push(linear(d, w, vb.pp(i.to_string()))?);
            d = w;
        }
        Ok(Self { layers })
    }
}

impl Module for Projection {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut x = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i + 1 < self.layers.len() {
                x = relu(&x)?;
            }
        }
        Ok(x)
    }
}

//! Field embeddings: one table per categorical field plus a Linear for the numerics.
//!
//! The per-field tables are stored packed in one tensor `table` of shape
//! (sum of cardinalities, d); field f owns rows `offset[f] .. offset[f] + card[f]`, row 0 of
//! each block being its OOV id. One gather then embeds every field at once, which is far
//! cheaper on CPU than one lookup per field.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::nn::linear::{linear, Linear};

/// Standard deviation of the initial embedding values.
pub const EMBEDDING_INIT_STD: f64 = 0.05;

#[derive(Clone, Debug)]
pub struct FieldEmbeddings {
    table: Option<Tensor>,
    offsets: Option<Tensor>,
    numeric: Option<Linear>,
    n_fields: usize,
    dim: usize,
}

impl FieldEmbeddings {
    pub fn new(cardinalities: &[usize], n_numeric: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        let total: usize = cardinalities.iter().sum();
        let (table, offsets) = if cardinalities.is_empty() {
            (None, None)
        } else {
            let table =
                vb.get_with_hints((total, dim), "table", Init::Randn { mean: 0.0, stdev: EMBEDDING_INIT_STD })?;
            let mut acc = 0u32;
            let offs: Vec<u32> = cardinalities
                .iter()
                .map(|&c| {
                    let o = acc;
                    acc += c as u32;
                    o
                })
                .collect();
            (Some(table), Some(Tensor::from_vec(offs, (1, cardinalities.len()), vb.device())?))
        };
        let numeric = if n_numeric > 0 { Some(linear(n_numeric, dim, vb.pp("numeric"))?) } else { None };
        Ok(Self { table, offsets, numeric, n_fields: cardinalities.len() + usize::from(n_numeric > 0), dim })
    }

    /// Width of the concatenated embedding vector x: (F + 1) d.
    pub fn out_dim(&self) -> usize {
        self.n_fields * self.dim
    }

    /// `cat`: (N, F) u32 ids, each below its field's cardinality; `num`: (N, D) f32.
    pub fn forward(&self, cat: &Tensor, num: &Tensor) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(2);
        if let (Some(table), Some(offsets)) = (&self.table, &self.offsets) {
            let (n, f) = cat.dims2()?;
            let ids = cat.to_dtype(DType::U32)?.broadcast_add(offsets)?.flatten_all()?;
            parts.push(table.index_select(&ids, 0)?.reshape((n, f * self.dim))?);
        }
        if let Some(numeric) = &self.numeric {
            parts.push(numeric.forward(num)?);
        }
        Tensor::cat(&parts, 1)
    }
}

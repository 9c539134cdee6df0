//! Predicting from raw feature values: the one inference path shared by the CLI and the
//! browser. An instance holds categorical ids (as the schema encodes them, 0 = OOV) and raw
//! numeric values, which are normalised here exactly as in training.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// One id per categorical field of the schema, each below the field's cardinality.
    pub cat: Vec<u32>,
    /// One raw (un-normalised) value per numeric field.
    pub num: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub pctr: f32,
    pub pcvr: f32,
    pub pctcvr: f32,
    /// The predicted temperature; `None` for a model without a contrastive term.
    pub tau: Option<f32>,
}

impl Bundle {
    /// Predicts a batch of instances in one forward pass.
    pub fn predict(&self, instances: &[Instance]) -> Result<Vec<Prediction>> {
        let (f, d) = (self.schema.num_categorical(), self.schema.num_numeric());
        let mut cat = Vec::with_capacity(instances.len() * f);
        let mut num = Vec::with_capacity(instances.len() * d);
        for (i, inst) in instances.iter().enumerate() {
            if inst.cat.len() != f || inst.num.len() != d {
                return Err(Error::Config(format!(
                    "instance {i} has {} categorical and {} numeric values; the model expects {f} and {d}",
                    inst.cat.len(),
                    inst.num.len()
                )));
            }
            for (field, &id) in self.schema.categorical.iter().zip(&inst.cat) {
                if id as usize >= field.cardinality() {
                    return Err(Error::Config(format!(
                        "instance {i}: id {id} is out of range for field `{}` ({} values)",
                        field.name,
                        field.cardinality()
                    )));
                }
            }
            cat.extend_from_slice(&inst.cat);
            for (field, &x) in self.schema.numeric.iter().zip(&inst.num) {
                if !x.is_finite() {
                    return Err(Error::NonFinite {
                        what: format!("value of `{}` in instance {i}", field.name),
                        value: x as f64,
                    });
                }
                num.push(field.normalize(x));
            }
        }
        let n = instances.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let dev = &self.device;
        let out = self.model.forward(&Tensor::from_vec(cat, (n, f), dev)?, &Tensor::from_vec(num, (n, d), dev)?)?;
        let pctr = out.pctr.to_vec1::<f32>()?;
        let pcvr = out.pcvr.to_vec1::<f32>()?;
        let pctcvr = out.pctcvr.to_vec1::<f32>()?;
        let tau = out.tau.map(|t| t.to_vec1::<f32>()).transpose()?;
        Ok((0..n)
            .map(|i| Prediction { pctr: pctr[i], pcvr: pcvr[i], pctcvr: pctcvr[i], tau: tau.as_ref().map(|t| t[i]) })
            .collect())
    }
}

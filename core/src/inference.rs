//! Predicting with a loaded bundle: the one inference path shared by `adaftr predict` and
//! the browser.
//!
//! Model inputs are [`Inputs`]: categorical ids and normalised numerics, row-major, built
//! only through the schema's encoding ([`crate::schema`]). They come from an [`Instance`]
//! (ids and raw numerics, as the browser's editor holds them) or from CSV rows
//! ([`crate::data::ScoreReader`]); [`Bundle::predict_inputs`] runs the model on them.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::schema::Schema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// One id per categorical field of the schema, each below the field's cardinality.
    pub cat: Vec<u32>,
    /// One raw (un-normalised) value per numeric field.
    pub num: Vec<f32>,
}

impl Instance {
    /// The instance of raw values: one string per categorical field (unknown or empty
    /// values become the OOV id 0) and one raw number per numeric field.
    pub fn from_raw(schema: &Schema, cat: &[&str], num: &[f32]) -> Self {
        Self { cat: schema.categorical.iter().zip(cat).map(|(f, v)| f.encode(v)).collect(), num: num.to_vec() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub pctr: f32,
    pub pcvr: f32,
    pub pctcvr: f32,
    /// The predicted temperature; `None` for a model without a contrastive term.
    pub tau: Option<f32>,
}

/// Encoded rows ready for the model: ids (0 = OOV) and normalised numerics, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    n_cat: usize,
    n_num: usize,
    rows: usize,
    cat: Vec<u32>,
    num: Vec<f32>,
}

impl Inputs {
    /// No rows yet, shaped for `schema`.
    pub fn new(schema: &Schema) -> Self {
        Self { n_cat: schema.num_categorical(), n_num: schema.num_numeric(), ..Self::default() }
    }

    /// The inputs of `instances`, checked and normalised with `schema`.
    pub fn from_instances(schema: &Schema, instances: &[Instance]) -> Result<Self> {
        let mut inputs = Self::new(schema);
        for inst in instances {
            inputs.push_instance(schema, inst)?;
        }
        Ok(inputs)
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Removes every row, keeping the buffers.
    pub fn clear(&mut self) {
        self.rows = 0;
        self.cat.clear();
        self.num.clear();
    }

    /// (rows x categorical fields) ids.
    pub fn cat(&self) -> &[u32] {
        &self.cat
    }

    /// (rows x numeric fields) normalised values.
    pub fn num(&self) -> &[f32] {
        &self.num
    }

    /// Appends an instance: ids checked against their tables, numerics normalised and
    /// checked finite. Errors name the instance by its row in these inputs.
    pub fn push_instance(&mut self, schema: &Schema, inst: &Instance) -> Result<()> {
        let i = self.rows;
        let (f, d) = (schema.num_categorical(), schema.num_numeric());
        if inst.cat.len() != f || inst.num.len() != d || (f, d) != (self.n_cat, self.n_num) {
            return Err(Error::Config(format!(
                "instance {i} has {} categorical and {} numeric values; the model expects {f} and {d}",
                inst.cat.len(),
                inst.num.len()
            )));
        }
        for (field, &id) in schema.categorical.iter().zip(&inst.cat) {
            if id as usize >= field.cardinality() {
                return Err(Error::Config(format!(
                    "instance {i}: id {id} is out of range for field `{}` ({} values)",
                    field.name,
                    field.cardinality()
                )));
            }
        }
        let start = self.num.len();
        for (field, &x) in schema.numeric.iter().zip(&inst.num) {
            match field.encode(x) {
                Some(y) => self.num.push(y),
                None => {
                    self.num.truncate(start);
                    let what = if x.is_finite() { "normalised value" } else { "value" };
                    return Err(Error::NonFinite {
                        what: format!("{what} of `{}` in instance {i}", field.name),
                        value: x as f64,
                    });
                }
            }
        }
        self.cat.extend_from_slice(&inst.cat);
        self.rows += 1;
        Ok(())
    }

    pub(crate) fn shaped_for(&self, schema: &Schema) -> bool {
        (self.n_cat, self.n_num) == (schema.num_categorical(), schema.num_numeric())
    }

    /// Appends a row already encoded by the schema (the CSV readers).
    pub(crate) fn push_encoded(&mut self, cat: &[u32], num: &[f32]) {
        debug_assert_eq!((cat.len(), num.len()), (self.n_cat, self.n_num));
        self.cat.extend_from_slice(cat);
        self.num.extend_from_slice(num);
        self.rows += 1;
    }
}

impl Bundle {
    /// Predicts a batch of instances in one forward pass.
    pub fn predict(&self, instances: &[Instance]) -> Result<Vec<Prediction>> {
        self.predict_inputs(&Inputs::from_instances(&self.schema, instances)?)
    }

    /// Predicts encoded rows in one forward pass.
    pub fn predict_inputs(&self, inputs: &Inputs) -> Result<Vec<Prediction>> {
        let (f, d) = (self.schema.num_categorical(), self.schema.num_numeric());
        if (inputs.n_cat, inputs.n_num) != (f, d) {
            return Err(Error::Config(format!(
                "inputs have {} categorical and {} numeric fields; the model expects {f} and {d}",
                inputs.n_cat, inputs.n_num
            )));
        }
        // Inputs encoded for another schema of the same shape could index past a table.
        let cards = self.schema.cardinalities();
        if let Some(pos) = inputs.cat.iter().enumerate().position(|(k, &id)| id as usize >= cards[k % f]) {
            let field = &self.schema.categorical[pos % f];
            return Err(Error::Config(format!(
                "input row {}: id {} is out of range for field `{}` ({} values)",
                pos / f,
                inputs.cat[pos],
                field.name,
                field.cardinality()
            )));
        }
        let n = inputs.rows;
        if n == 0 {
            return Ok(Vec::new());
        }
        let dev = &self.device;
        let cat = Tensor::from_slice(&inputs.cat, (n, f), dev)?;
        let num = Tensor::from_slice(&inputs.num, (n, d), dev)?;
        let out = self.model.forward(&cat, &num)?;
        let pctr = out.pctr.to_vec1::<f32>()?;
        let pcvr = out.pcvr.to_vec1::<f32>()?;
        let pctcvr = out.pctcvr.to_vec1::<f32>()?;
        let tau = out.tau.map(|t| t.to_vec1::<f32>()).transpose()?;
        Ok((0..n)
            .map(|i| Prediction { pctr: pctr[i], pcvr: pcvr[i], pctcvr: pctcvr[i], tau: tau.as_ref().map(|t| t[i]) })
            .collect())
    }
}

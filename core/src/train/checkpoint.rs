//! Training checkpoints: everything a killed run needs to resume to exactly the result of an
//! uninterrupted one (on CPU). A checkpoint is the container of `container.rs` (as a
//! bundle is) holding the current weights (`param.*`), the best epoch's (`best.*`), the
//! optimiser's moments (`adam.m.*`, `adam.v.*`) and, as metadata, the config, the fitted
//! schema, the loop counters and the optimiser's step count. Every other random choice of
//! training is derived from (seed, epoch, step), so nothing else is needed.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::fit::TrainState;
use super::step::Step;
use super::Trainer;
use crate::container::{self, to_json, Metadata};
use crate::error::{Error, Result};
use crate::model::AdaFtr;
use crate::nn::Params;

const FORMAT: &str = "adaftr-checkpoint";
const VERSION: u32 = 1;

impl Trainer {
    /// Everything needed to resume: weights, best weights, optimiser state, counters.
    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        let step = &self.step;
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, var) in step.params.sorted() {
            tensors.push((format!("param.{name}"), var.as_tensor().clone()));
        }
        for (name, t) in self.best.iter().flatten() {
            tensors.push((format!("best.{name}"), t.clone()));
        }
        tensors.extend(step.opt.state_tensors());
        let meta = [
            ("config", to_json(&step.config)?),
            ("schema", to_json(&self.schema)?),
            ("state", to_json(&self.state)?),
            ("adam_step", step.opt.step_count().to_string()),
        ];
        container::write(FORMAT, VERSION, meta, tensors)
    }

    /// Restores a trainer from [`Trainer::checkpoint_bytes`], validating it like a bundle.
    pub fn from_checkpoint(bytes: &[u8], device: &Device) -> Result<Self> {
        let meta = Metadata::read(bytes, FORMAT, VERSION)?;
        let (config, schema) = meta.config_and_schema()?;
        let state: TrainState = meta.json("state")?;
        let adam_step: u64 = meta
            .get("adam_step")?
            .parse()
            .map_err(|_| Error::BundleMetadata { key: "adam_step".into(), reason: "not a number".into() })?;
        let all: HashMap<String, Tensor> = container::read_tensors(bytes, device)?.into_iter().collect();
        let take = |prefix: &str| -> Vec<(String, Tensor)> {
            let mut v: Vec<(String, Tensor)> =
                all.iter().filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone()))).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let params = Params::from_tensors(take("param."))?;
        let model = AdaFtr::from_params(&config, &schema, &params, device)?;
        let mut step = Step::new(config, model, params)?;
        step.opt.load_state(adam_step, |k| all.get(k).cloned())?;
        let best = take("best.");
        // The best-epoch snapshot must be a copy of this very model, or the resumed run
        // would only fail when it restores it at the end.
        for (name, t) in &best {
            match step.params.get(name) {
                None => return Err(Error::UnexpectedTensor(format!("best.{name}"))),
                Some(v) if v.dims() != t.dims() => {
                    return Err(Error::ShapeMismatch {
                        name: format!("best.{name}"),
                        expected: v.dims().to_vec(),
                        found: t.dims().to_vec(),
                    })
                }
                Some(_) => {}
            }
        }
        if !best.is_empty() && best.len() != step.params.len() {
            return Err(Error::MissingTensor("best.* (the best-epoch snapshot is incomplete)".into()));
        }
        let best = if best.is_empty() { None } else { Some(best) };
        Ok(Self { step, schema, state, device: device.clone(), best, group: None })
    }
}

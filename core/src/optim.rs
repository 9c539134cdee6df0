//! Adam with decoupled weight decay, written out so that its state can be checkpointed and
//! restored exactly (candle-nn's optimisers keep their moments private) and so that groups
//! of parameters can have their own learning rate.

use candle_core::{backprop::GradStore, Result, Tensor, Var};

use crate::nn::Params;

#[derive(Clone, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
    lr_scale: f64,
}

pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
    step: u64,
}

impl Adam {
    /// `lr_scale(name)` multiplies the learning rate of the parameter called `name`.
    pub fn new(params: &Params, cfg: AdamConfig, lr_scale: impl Fn(&str) -> f64) -> Result<Self> {
        let slots = params
            .sorted()
            .into_iter()
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let lr_scale = lr_scale(&name);
                Ok(Slot { name, var, m, v, lr_scale })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { cfg, slots, step: 0 })
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = &self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for s in &self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            let lr = c.lr * s.lr_scale;
            if lr == 0.0 {
                continue;
            }
            let m = ((s.m.as_tensor() * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((s.v.as_tensor() * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let mut theta = s.var.as_tensor().clone();
            if c.weight_decay > 0.0 {
                theta = (theta * (1.0 - lr * c.weight_decay))?;
            }
            s.var.set(&(theta - (update * lr)?)?)?;
            s.m.set(&m)?;
            s.v.set(&v)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`adam.m.<param>`, `adam.v.<param>`), for checkpoints.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("adam.m.{}", s.name), s.m.as_tensor().clone()),
                    (format!("adam.v.{}", s.name), s.v.as_tensor().clone()),
                ]
            })
            .collect()
    }

    /// Restores moments and step count saved by [`Adam::state_tensors`].
    pub fn load_state(&mut self, step: u64, get: impl Fn(&str) -> Option<Tensor>) -> crate::Result<()> {
        for s in &self.slots {
            for (kind, var) in [("m", &s.m), ("v", &s.v)] {
                let key = format!("adam.{kind}.{}", s.name);
                let t = get(&key).ok_or_else(|| crate::Error::MissingTensor(key.clone()))?;
                if t.dims() != var.dims() {
                    return Err(crate::Error::ShapeMismatch {
                        name: key,
                        expected: var.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                var.set(&t)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

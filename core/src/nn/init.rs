//! Deterministic parameter initialisation.
//!
//! candle's `VarMap` draws initial values from the device RNG, which cannot be seeded on
//! CPU. This backend draws each parameter from our own [`Rng`] keyed by the seed and the
//! parameter's name, so a seed fixes the initial model exactly, on every platform.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::rng::{fnv1a, Rng, FNV_OFFSET};

/// The trainable parameters of a model, by name (the name is also the bundle tensor name).
#[derive(Clone, Default)]
pub struct Params {
    vars: Arc<Mutex<HashMap<String, Var>>>,
}

impl Params {
    /// All parameters, sorted by name so that every consumer sees one stable order.
    pub fn sorted(&self) -> Vec<(String, Var)> {
        let guard = self.vars.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(String, Var)> = guard.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Trainable parameters holding the given tensors.
    pub fn from_tensors(tensors: impl IntoIterator<Item = (String, Tensor)>) -> candle_core::Result<Self> {
        let vars =
            tensors.into_iter().map(|(k, t)| Ok((k, Var::from_tensor(&t)?))).collect::<candle_core::Result<_>>()?;
        Ok(Self { vars: Arc::new(Mutex::new(vars)) })
    }

    /// A copy of every parameter's current value (not tracked for gradients).
    pub fn snapshot(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        self.sorted().into_iter().map(|(k, v)| Ok((k, v.as_tensor().copy()?.detach()))).collect()
    }

    /// Overwrites parameters with values from a snapshot of the same model.
    pub fn restore(&self, snapshot: &[(String, Tensor)]) -> candle_core::Result<()> {
        for (name, t) in snapshot {
            match self.get(name) {
                Some(v) => v.set(t)?,
                None => candle_core::bail!("snapshot has unknown parameter `{name}`"),
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Var> {
        self.vars.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.vars.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.sorted().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// Where a missing parameter comes from: drawn fresh, or an error (loading a bundle).
enum Source {
    Seeded(u64),
    /// Loading: every parameter must already be present with the requested shape; the first
    /// problem is kept as a typed error because candle's error type cannot carry ours.
    Strict(Arc<Mutex<StrictState>>, Tracking),
}

/// A copy of `t` that records no backward graph and, for a CPU f32 tensor, whose first
/// element starts a 64-byte cache line. The single-instance path streams each weight once
/// per prediction, and with glibc's 16-byte alignment most vector loads straddle two lines:
/// a matrix-vector product over PLE's experts ran at 89 GB/s misaligned and 112 GB/s aligned
/// on this project's AMD EPYC. (The buffer is a few elements longer than the weight; the
/// tensor is the aligned view into it.)
fn line_aligned(t: &Tensor) -> candle_core::Result<Tensor> {
    const LINE_FLOATS: usize = 16;
    if !t.device().is_cpu() || t.dtype() != DType::F32 {
        return Ok(t.detach());
    }
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    let n = values.len();
    let mut buf = vec![0f32; n + LINE_FLOATS - 1];
    let off = (LINE_FLOATS - (buf.as_ptr() as usize / 4) % LINE_FLOATS) % LINE_FLOATS;
    buf[off..off + n].copy_from_slice(&values);
    Tensor::from_vec(buf, n + LINE_FLOATS - 1, t.device())?.narrow(0, off, n)?.reshape(t.shape())
}

/// Whether a model built from existing parameters is trained (its weights are the
/// parameters' variables) or only runs forward (its weights are line-aligned copies that
/// record no backward graph, which at one instance per call costs as much as the embeddings
/// and towers together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    Trainable,
    InferenceOnly,
}

/// What a strict (loading) build observed: the first problem, and every name it used.
#[derive(Default)]
pub struct StrictState {
    pub first_error: Option<crate::Error>,
    pub used: std::collections::HashSet<String>,
}

struct SeededBackend {
    params: Params,
    source: Source,
}

fn draw(init: Init, shape: &Shape, rng: &mut Rng) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |lo: f64, up: f64, rng: &mut Rng| (0..n).map(|_| (lo + (up - lo) * rng.next_f64()) as f32).collect();
    let normal = |mean: f64, std: f64, rng: &mut Rng| (0..n).map(|_| (mean + std * rng.normal()) as f32).collect();
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => uniform(lo, up, rng),
        Init::Randn { mean, stdev } => normal(mean, stdev, rng),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => uniform(-(3f64.sqrt()) * std, 3f64.sqrt() * std, rng),
                NormalOrUniform::Normal => normal(0.0, std, rng),
            }
        }
    }
}

impl SimpleBackend for SeededBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut vars = self.params.vars.lock().unwrap_or_else(|e| e.into_inner());
        let fail = |e: crate::Error| {
            let msg = e.to_string();
            if let Source::Strict(slot, _) = &self.source {
                slot.lock().unwrap_or_else(|p| p.into_inner()).first_error.get_or_insert(e);
            }
            candle_core::Error::Msg(msg)
        };
        if let Some(v) = vars.get(name) {
            if v.shape() != &s {
                return Err(fail(crate::Error::ShapeMismatch {
                    name: name.to_string(),
                    expected: s.dims().to_vec(),
                    found: v.dims().to_vec(),
                }));
            }
            if let Source::Strict(state, tracking) = &self.source {
                state.lock().unwrap_or_else(|p| p.into_inner()).used.insert(name.to_string());
                if *tracking == Tracking::InferenceOnly {
                    return line_aligned(v.as_tensor());
                }
            }
            return Ok(v.as_tensor().clone());
        }
        let seed = match &self.source {
            Source::Seeded(seed) => *seed,
            Source::Strict(..) => return Err(fail(crate::Error::MissingTensor(name.to_string()))),
        };
        let mut rng = Rng::derive(seed, fnv1a(FNV_OFFSET, name.as_bytes()));
        let values = draw(h, &s, &mut rng);
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        let vars = self.params.vars.lock().unwrap_or_else(|e| e.into_inner());
        match vars.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("parameter `{name}` has no shape to initialise from"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.params.vars.lock().unwrap_or_else(|e| e.into_inner()).contains_key(name)
    }
}

/// A `VarBuilder` that creates fresh, seeded, trainable parameters, and the handle to them.
pub fn seeded_var_builder(seed: u64, device: &Device) -> (VarBuilder<'static>, Params) {
    let params = Params::default();
    let backend = SeededBackend { params: params.clone(), source: Source::Seeded(seed) };
    (VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()), params)
}

/// A `VarBuilder` serving the given parameters, and the state where the first missing or
/// mis-shaped parameter is reported as a typed error and every used name is recorded.
pub fn strict_var_builder(
    params: &Params,
    device: &Device,
    tracking: Tracking,
) -> (VarBuilder<'static>, Arc<Mutex<StrictState>>) {
    let slot = Arc::new(Mutex::new(StrictState::default()));
    let backend = SeededBackend { params: params.clone(), source: Source::Strict(slot.clone(), tracking) };
    (VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()), slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy holds the same values, starts on a cache line and records no graph.
    #[test]
    fn line_aligned_copies_start_on_a_cache_line() {
        let dev = Device::Cpu;
        for shape in [(1usize, 1usize), (3, 5), (256, 272)] {
            let var = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap()).unwrap();
            let copy = line_aligned(var.as_tensor()).unwrap();
            assert_eq!(copy.dims(), var.dims());
            assert!(!copy.track_op());
            assert_eq!(copy.to_vec2::<f32>().unwrap(), var.as_tensor().to_vec2::<f32>().unwrap());
            let start = crate::cpu_kernel::with_f32_slices(&[&copy], |s| s[0].as_ptr() as usize).unwrap();
            assert_eq!(start % 64, 0, "{shape:?}");
        }
    }
}

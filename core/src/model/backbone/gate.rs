//! A softmax gate mixing expert outputs, shared by MMoE and PLE.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::linear::{linear, Linear};
use crate::nn::mix::softmax_mix;

#[derive(Clone, Debug)]
pub struct Gate {
    proj: Linear,
}

impl Gate {
    pub fn new(in_dim: usize, n_experts: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { proj: linear(in_dim, n_experts, vb)? })
    }

    /// Weighted sum of the experts in blocks `blocks` of a bank's side-by-side output
    /// `joined` (each block `width` columns), with softmax weights computed from `input`.
    pub fn mix(&self, input: &Tensor, joined: &Tensor, width: usize, blocks: &[usize]) -> Result<Tensor> {
        softmax_mix(&self.proj.forward(input)?, joined, width, blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::seeded_var_builder;
    use candle_core::Device;

    /// The gate learns: its gradient matches a central finite difference of the mixed output.
    #[test]
    fn gate_weights_get_the_true_gradient() {
        let dev = Device::Cpu;
        let (vb, params) = seeded_var_builder(3, &dev);
        let gate = Gate::new(4, 3, vb.pp("gate")).unwrap();
        let x = Tensor::from_vec((0..20).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect(), (5, 4), &dev).unwrap();
        let experts: Vec<Tensor> =
            (0..3).map(|e| (x.narrow(1, 0, 2).unwrap() * (e as f64 + 1.0)).unwrap().sin().unwrap()).collect();
        let joined = Tensor::cat(&experts, 1).unwrap();
        let loss = |g: &Gate| g.mix(&x, &joined, 2, &[0, 1, 2]).unwrap().sqr().unwrap().sum_all().unwrap();
        let w = params.get("gate.weight").unwrap();
        let grad: Vec<f32> = loss(&gate)
            .backward()
            .unwrap()
            .get(w.as_tensor())
            .expect("no gradient reached the gate")
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for j in [0, 5, 11] {
            let at = |d: f32| {
                let mut v = base.clone();
                v[j] += d;
                w.set(&Tensor::from_vec(v, (3, 4), &dev).unwrap()).unwrap();
                loss(&gate).to_scalar::<f32>().unwrap()
            };
            let fd = (at(1e-2) - at(-1e-2)) / 2e-2;
            assert!(
                grad[j].abs() > 1e-4 && (grad[j] - fd).abs() < 1e-2 * fd.abs().max(1e-2),
                "{j}: {} vs {fd}",
                grad[j]
            );
        }
    }
}

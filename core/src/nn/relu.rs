//! ReLU with a one-pass backward on the CPU.
//!
//! candle differentiates `relu` as `grad * (x >= 0).to_dtype()`: a zeros tensor, a
//! comparison through its generic broadcasting path, a cast and a product, four passes over
//! every hidden activation of a training step. Here the backward is a single pass over the
//! output. Other devices and dtypes keep candle's own op (a custom op would need a kernel
//! per backend).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use crate::cpu_kernel::f32_slice;

pub fn relu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(Relu)
    } else {
        x.relu()
    }
}

struct Relu;

/// max(z, 0), NaN to 0 as `f32::max` does, written as a comparison: in wasm32 `f32::max`
/// is a call to libm's `fmaxf` per element (wasm's own `f32.max` propagates NaN), which
/// took 6% of a training step; this is a compare and a select, vectorised.
#[inline(always)]
pub(crate) fn positive(z: f32) -> f32 {
    if z > 0.0 {
        z
    } else {
        0.0
    }
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "adaftr-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "adaftr-relu", "input")?;
        let out: Vec<f32> = x.iter().map(|&v| positive(v)).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        relu_grad(grad, y).map(Some)
    }
}

/// The gradient through a ReLU whose output was `y` (CPU, f32), one pass.
pub(crate) fn relu_grad(grad: &Tensor, y: &Tensor) -> Result<Tensor> {
    grad.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &ReluGrad)
}

/// grad * (y > 0), y the ReLU's output (y > 0 exactly where x > 0).
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "adaftr-relu-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, y) =
            (f32_slice(s1, l1, "adaftr-relu-grad", "gradient")?, f32_slice(s2, l2, "adaftr-relu-grad", "output")?);
        let out: Vec<f32> = g.iter().zip(y).map(|(&g, &y)| if y > 0.0 { g } else { 0.0 }).collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_relu_in_value_and_gradient() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (9, 7), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (9, 7), &dev).unwrap();
        // A transposed (strided) input is made contiguous first.
        for input in [x.as_tensor().clone(), x.as_tensor().t().unwrap().t().unwrap()] {
            let (a, b) = (relu(&input).unwrap(), input.relu().unwrap());
            assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
            let ga = (&a * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&b * &w).unwrap().sum_all().unwrap().backward().unwrap();
            // candle's gradient at exactly 0 is 1 (x >= 0); ours is 0. randn never gives 0.
            assert_eq!(ga.get(&x).unwrap().to_vec2::<f32>().unwrap(), gb.get(&x).unwrap().to_vec2::<f32>().unwrap());
        }
    }
}

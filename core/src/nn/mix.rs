//! A softmax-gated mixture of E expert outputs, out_n = sum_e softmax(logits_n)_e x_{e,n}, as
//! one CPU op (forward) and two one-pass ops (backward).
//!
//! Built from candle's ops (softmax, stack, broadcast product, sum over the expert axis) the
//! mixture costs a strided reduction and several copies of the (N, E, H) stack: profiling
//! PLE inference found a third of its time there, as much as its dense layers. The experts
//! are read in place from a bank's side-by-side output (`nn::bank`), so a gate that mixes
//! some of a bank's experts copies nothing. Every row is independent, so the result and the
//! gradients are the same bits on any number of threads. Other devices and dtypes use
//! candle's ops.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::linear::chunk_rows;
use crate::cpu_kernel::f32_slice;

/// sum_e softmax(logits)_e x_e, where `logits` is (N, E) and expert e's output x_e is block
/// `blocks[e]` of `joined`: its columns [b H, (b + 1) H), H = `width`.
pub fn softmax_mix(logits: &Tensor, joined: &Tensor, width: usize, blocks: &[usize]) -> Result<Tensor> {
    let (n, e) = logits.dims2()?;
    let (n2, total) = joined.dims2()?;
    if n != n2 || e != blocks.len() || blocks.iter().any(|&b| (b + 1) * width > total) {
        candle_core::bail!("softmax mix: logits ({n}, {e}) for blocks {blocks:?} of width {width} in ({n2}, {total})");
    }
    let fused = logits.device().is_cpu() && [logits.dtype(), joined.dtype()] == [DType::F32; 2];
    if !fused {
        // `candle_nn::ops::softmax`, not `softmax_last_dim`: the latter is a forward-only op.
        let weights = candle_nn::ops::softmax(logits, D::Minus1)?;
        let experts = blocks.iter().map(|&b| joined.narrow(1, b * width, width)).collect::<Result<Vec<_>>>()?;
        let stacked = Tensor::stack(&experts, 1)?; // (N, E, H)
        return stacked.broadcast_mul(&weights.unsqueeze(2)?)?.sum(1);
    }
    let mix = Mix { width, blocks: blocks.to_vec() };
    logits.contiguous()?.apply_op2(&joined.contiguous()?, mix)
}

/// The softmax of one row of logits, written into `p`.
fn softmax_row(logits: &[f32], p: &mut [f32]) {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0f32;
    for (q, &z) in p.iter_mut().zip(logits) {
        *q = (z - m).exp();
        total += *q;
    }
    for q in p.iter_mut() {
        *q /= total;
    }
}

/// The mixture of the blocks `blocks` (each `width` columns wide) of a side-by-side matrix.
struct Mix {
    width: usize,
    blocks: Vec<usize>,
}

/// Where one row's experts and weights live.
struct Rows<'a> {
    logits: &'a [f32],
    joined: &'a [f32],
    n: usize,
    e: usize,
    total: usize,
}

impl Mix {
    fn rows<'a>(&self, s1: &'a CpuStorage, l1: &Layout, s2: &'a CpuStorage, l2: &Layout, op: &str) -> Result<Rows<'a>> {
        let (logits, joined) = (f32_slice(s1, l1, op, "gate logits")?, f32_slice(s2, l2, op, "experts")?);
        let (n, e) = l1.shape().dims2()?;
        let (n2, total) = l2.shape().dims2()?;
        if n != n2 || e != self.blocks.len() || self.blocks.iter().any(|&b| (b + 1) * self.width > total) {
            candle_core::bail!("{op}: logits ({n}, {e}) and experts ({n2}, {total})");
        }
        Ok(Rows { logits, joined, n, e, total })
    }

    /// The backward ops' operands: logits, experts and the output's gradient.
    fn rows_and_grad<'a>(&self, s: [&'a CpuStorage; 3], l: [&Layout; 3]) -> Result<(Rows<'a>, &'a [f32])> {
        let op = "softmax mix (backward)";
        let r = self.rows(s[0], l[0], s[1], l[1], op)?;
        let g = f32_slice(s[2], l[2], op, "gradient")?;
        if g.len() != r.n * self.width {
            candle_core::bail!("{op}: gradient of {} elements for ({}, {})", g.len(), r.n, self.width);
        }
        Ok((r, g))
    }

    /// Expert k's output in row i.
    fn expert<'a>(&self, r: &Rows<'a>, i: usize, k: usize) -> &'a [f32] {
        let start = i * r.total + self.blocks[k] * self.width;
        &r.joined[start..start + self.width]
    }
}

impl CustomOp2 for Mix {
    fn name(&self) -> &'static str {
        "adaftr-softmax-mix"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let r = self.rows(s1, l1, s2, l2, "softmax mix")?;
        let (h, e) = (self.width, r.e);
        let mut out = vec![0f32; r.n * h];
        let rows = chunk_rows(e * h);
        out.par_chunks_mut(rows * h.max(1)).enumerate().for_each(|(c, o)| {
            let mut p = vec![0f32; e];
            for (j, orow) in o.chunks_exact_mut(h.max(1)).enumerate() {
                let i = c * rows + j;
                softmax_row(&r.logits[i * e..(i + 1) * e], &mut p);
                for (k, &pk) in p.iter().enumerate() {
                    for (v, &xv) in orow.iter_mut().zip(self.expert(&r, i, k)) {
                        *v += pk * xv;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((r.n, h))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        joined: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_logits = logits.apply_op3_no_bwd(joined, &grad, &MixGradLogits(self))?;
        let grad_joined = logits.apply_op3_no_bwd(joined, &grad, &MixGradExperts(self))?;
        Ok((Some(grad_logits), Some(grad_joined)))
    }
}

/// d/d logits: p_e (a_e - sum_k p_k a_k), a_e = <grad_n, x_{e,n}>.
struct MixGradLogits<'a>(&'a Mix);

impl CustomOp3 for MixGradLogits<'_> {
    fn name(&self) -> &'static str {
        "adaftr-softmax-mix-grad-logits"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let mix = self.0;
        let (r, g) = mix.rows_and_grad([s1, s2, s3], [l1, l2, l3])?;
        let (h, e) = (mix.width, r.e);
        let mut out = vec![0f32; r.n * e];
        let rows = chunk_rows(e * h);
        out.par_chunks_mut((rows * e).max(1)).enumerate().for_each(|(c, o)| {
            let mut p = vec![0f32; e];
            for (j, orow) in o.chunks_exact_mut(e.max(1)).enumerate() {
                let i = c * rows + j;
                softmax_row(&r.logits[i * e..(i + 1) * e], &mut p);
                let grow = &g[i * h..(i + 1) * h];
                for (k, a) in orow.iter_mut().enumerate() {
                    *a = grow.iter().zip(mix.expert(&r, i, k)).map(|(&gv, &xv)| gv * xv).sum();
                }
                let mean: f32 = p.iter().zip(orow.iter()).map(|(&pk, &ak)| pk * ak).sum();
                for (a, &pk) in orow.iter_mut().zip(&p) {
                    *a = pk * (*a - mean);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((r.n, e))))
    }
}

/// d/d joined: p_e grad_n in expert e's block, zero in the blocks the gate does not read.
struct MixGradExperts<'a>(&'a Mix);

impl CustomOp3 for MixGradExperts<'_> {
    fn name(&self) -> &'static str {
        "adaftr-softmax-mix-grad-experts"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let mix = self.0;
        let (r, g) = mix.rows_and_grad([s1, s2, s3], [l1, l2, l3])?;
        let (h, e, total) = (mix.width, r.e, r.total);
        let mut out = vec![0f32; r.n * total];
        let rows = chunk_rows(total);
        out.par_chunks_mut((rows * total).max(1)).enumerate().for_each(|(c, o)| {
            let mut p = vec![0f32; e];
            for (j, orow) in o.chunks_exact_mut(total.max(1)).enumerate() {
                let i = c * rows + j;
                softmax_row(&r.logits[i * e..(i + 1) * e], &mut p);
                let grow = &g[i * h..(i + 1) * h];
                for (&b, &pk) in mix.blocks.iter().zip(&p) {
                    for (v, &gv) in orow[b * h..(b + 1) * h].iter_mut().zip(grow) {
                        *v += pk * gv;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((r.n, total))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_kernel::max_abs_diff;
    use candle_core::{Device, Var};

    /// candle's op-by-op formulation on the blocks cut out, the reference.
    fn reference(logits: &Tensor, joined: &Tensor, width: usize, blocks: &[usize]) -> Tensor {
        let w = candle_nn::ops::softmax(logits, D::Minus1).unwrap();
        let experts: Vec<Tensor> = blocks.iter().map(|&b| joined.narrow(1, b * width, width).unwrap()).collect();
        Tensor::stack(&experts, 1).unwrap().broadcast_mul(&w.unsqueeze(2).unwrap()).unwrap().sum(1).unwrap()
    }

    #[test]
    fn matches_candle_ops_in_value_and_gradient() {
        let dev = Device::Cpu;
        // Enough rows for several parallel chunks; the gate reads three of four blocks, out
        // of order, so one block gets no gradient.
        let (n, h, blocks) = (1501, 13, [2, 0, 3]);
        let logits = Var::from_tensor(&Tensor::randn(0f32, 2.0, (n, 3), &dev).unwrap()).unwrap();
        let joined = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, 4 * h), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1.0, (n, h), &dev).unwrap();
        let ours = softmax_mix(&logits, &joined, h, &blocks).unwrap();
        let theirs = reference(&logits, &joined, h, &blocks);
        assert!(max_abs_diff(&ours, &theirs) < 1e-5);
        let ga = (&ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&theirs * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&logits, &joined] {
            let (a, b) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
            assert!(max_abs_diff(a, b) < 1e-4, "gradient differs by {}", max_abs_diff(a, b));
        }
        let unread = ga.get(joined.as_tensor()).unwrap().narrow(1, h, h).unwrap();
        assert_eq!(unread.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }

    /// Another dtype (as another device would) takes candle's ops: the same values.
    #[test]
    fn other_dtypes_take_candle_ops() {
        let dev = Device::Cpu;
        let logits = Tensor::randn(0f32, 1.0, (40, 2), &dev).unwrap();
        let joined = Tensor::randn(0f32, 1.0, (40, 15), &dev).unwrap();
        let fused = softmax_mix(&logits, &joined, 5, &[2, 0]).unwrap();
        let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let fallback = softmax_mix(&f64s(&logits), &f64s(&joined), 5, &[2, 0]).unwrap();
        assert_eq!(fallback.dtype(), DType::F64);
        assert!(max_abs_diff(&f64s(&fused), &fallback) < 1e-5);
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((5, 2), DType::F32, &dev).unwrap();
        let joined = Tensor::zeros((5, 6), DType::F32, &dev).unwrap();
        assert!(softmax_mix(&logits, &joined, 3, &[0, 1]).is_ok());
        assert!(softmax_mix(&logits, &joined, 3, &[0, 2]).is_err(), "block 2 lies outside");
        assert!(softmax_mix(&logits, &joined, 3, &[0]).is_err(), "two logits for one block");
    }

    #[test]
    fn the_same_bits_on_one_and_two_threads() {
        let dev = Device::Cpu;
        let logits = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4000, 4), &dev).unwrap()).unwrap();
        let joined = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4000, 128), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1.0, (4000, 32), &dev).unwrap();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                let y = softmax_mix(&logits, &joined, 32, &[0, 1, 2, 3]).unwrap();
                let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (flat(&y), flat(g.get(&logits).unwrap()), flat(g.get(&joined).unwrap()))
            })
        };
        assert_eq!(run(1), run(2));
    }
}

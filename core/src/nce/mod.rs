//! In-batch InfoNCE with per-row temperatures as one fused CPU kernel (forward) and one
//! (backward). The op-by-op graph of `loss::info_nce_rows` materialises a dozen N x N
//! tensors per direction (scaled logits, max, shifted, exp, sums, the diagonal gather, and
//! as many again in the backward pass), which dominates a training step at batch 2048 on a
//! CPU. Here each direction is two sweeps over the similarity matrix and the backward reuses
//! the forward's log-sum-exps (the arithmetic is `kernel.rs`: the same bits on any number of
//! threads and any vector width). Two ops: on a score matrix (`info_nce_in_batch`), and on
//! the two sides of the product (`info_nce_of_pair`, what training uses).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use crate::cpu_kernel::{f32_slice, product, written_by};

mod kernel;

use kernel::{backward_in_place, loss_and_stats, Stats};

/// In-batch InfoNCE with a per-row temperature, fused into one CPU kernel for the forward
/// pass and one for the backward: `s` is the (N, N) similarity matrix, `tau` (N,). Returns
/// -(1/N) sum_i [s_ii/tau_i - logsumexp_j s_ij/tau_i], averaged with the same over the
/// columns (s_ji, temperature tau_i) when `symmetric`: the value of `info_nce_rows` (up to
/// float rounding) without the dozen N x N intermediates of the op-by-op graph.
pub fn info_nce_in_batch(s: &Tensor, tau: &Tensor, symmetric: bool) -> Result<Tensor> {
    let s = s.contiguous()?;
    let tau = tau.contiguous()?;
    s.apply_op2(&tau, InfoNce { symmetric, stats: Mutex::new(None) })
}

/// [`info_nce_in_batch`] of s = u v^T, with the product inside the op: `u` and `v` are
/// (N, D), `tau` (N,). The (N, N) matrix and its gradient then never enter candle's graph,
/// which would otherwise allocate a zeroed N x N gradient, add dS into it and keep both
/// (48 MB of traffic a step at N = 2048); the backward overwrites s with dS in place and
/// returns the gradients of u and v directly.
pub fn info_nce_of_pair(u: &Tensor, v: &Tensor, tau: &Tensor, symmetric: bool) -> Result<Tensor> {
    let (u, v, tau) = (u.contiguous()?, v.contiguous()?, tau.contiguous()?);
    u.apply_op3(&v, &tau, InfoNcePair { symmetric, saved: Mutex::new(None) })
}

struct InfoNce {
    symmetric: bool,
    /// The row and column log-sum-exps of the forward pass, reused by the backward.
    stats: Mutex<Option<Stats>>,
}

fn nce_inputs<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a [f32], &'a [f32], usize)> {
    let (n, n2) = l1.shape().dims2()?;
    if n != n2 || l2.shape().dims1()? != n {
        candle_core::bail!("info_nce_in_batch: need (N, N) scores and (N,) temperatures");
    }
    let (s, t) =
        (f32_slice(s1, l1, "info_nce_in_batch", "scores")?, f32_slice(s2, l2, "info_nce_in_batch", "temperatures")?);
    Ok((s, t, n))
}

impl CustomOp2 for InfoNce {
    fn name(&self) -> &'static str {
        "info-nce-in-batch"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (s, tau, n) = nce_inputs(s1, l1, s2, l2)?;
        let (loss, stats) = loss_and_stats(s, tau, n, self.symmetric);
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(&self, s: &Tensor, tau: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).take();
        let both = s.apply_op2_no_bwd(tau, &InfoNceGrad { symmetric: self.symmetric, g, stats: Mutex::new(stats) })?;
        let n = tau.dim(0)?;
        let ds = both.narrow(0, 0, n * n)?.reshape((n, n))?;
        let dtau = both.narrow(0, n * n, n)?;
        Ok((Some(ds), Some(dtau)))
    }
}

/// The gradients of [`InfoNce`] with respect to s (N x N) and tau (N), scaled by the
/// upstream gradient `g`, flattened into one vector of N*N + N values.
struct InfoNceGrad {
    symmetric: bool,
    g: f32,
    /// The forward pass's statistics, when available.
    stats: Mutex<Option<Stats>>,
}

impl CustomOp2 for InfoNceGrad {
    fn name(&self) -> &'static str {
        "info-nce-in-batch-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (s, tau, n) = nce_inputs(s1, l1, s2, l2)?;
        let mut out = Vec::with_capacity(n * n + n);
        out.extend_from_slice(s);
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).take();
        let dtau = backward_in_place(&mut out, tau, n, self.symmetric, self.g, stats);
        out.extend(dtau);
        Ok((CpuStorage::F32(out), Shape::from(n * n + n)))
    }
}

struct InfoNcePair {
    symmetric: bool,
    /// The forward pass's scores s = u v^T and statistics, reused (and overwritten) by the
    /// backward.
    saved: Mutex<Option<(Vec<f32>, Stats)>>,
}

/// The pair op's operands as slices, with N and D, checked against each other.
struct Pair<'a> {
    u: &'a [f32],
    v: &'a [f32],
    tau: &'a [f32],
    n: usize,
    d: usize,
}

fn pair_inputs<'a>(s: [&'a CpuStorage; 3], l: [&Layout; 3], op: &str) -> Result<Pair<'a>> {
    let (n, d) = l[0].shape().dims2()?;
    if l[1].shape().dims2()? != (n, d) || l[2].shape().dims1()? != n {
        candle_core::bail!("{op}: need (N, D) u and v and (N,) temperatures");
    }
    let (u, v) = (f32_slice(s[0], l[0], op, "u")?, f32_slice(s[1], l[1], op, "v")?);
    Ok(Pair { u, v, tau: f32_slice(s[2], l[2], op, "temperatures")?, n, d })
}

/// s = u v^T, (N, N).
fn scores(u: &[f32], v: &[f32], n: usize, d: usize) -> Vec<f32> {
    // SAFETY: u and v are (n, d) row-major, v read as its transpose (d, n); s is (n, n).
    unsafe { written_by(n * n, |s| product(n, n, d, (s, n, 1), (u.as_ptr(), d, 1), (v.as_ptr(), 1, d))) }
}

impl CustomOp3 for InfoNcePair {
    fn name(&self) -> &'static str {
        "info-nce-of-pair"
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
        let Pair { u, v, tau, n, d } = pair_inputs([s1, s2, s3], [l1, l2, l3], "info_nce_of_pair")?;
        let s = scores(u, v, n, d);
        let (loss, stats) = loss_and_stats(&s, tau, n, self.symmetric);
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some((s, stats));
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(
        &self,
        u: &Tensor,
        v: &Tensor,
        tau: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take();
        let all =
            u.apply_op3_no_bwd(v, tau, &InfoNcePairGrad { symmetric: self.symmetric, g, saved: Mutex::new(saved) })?;
        let (n, d) = u.dims2()?;
        let du = all.narrow(0, 0, n * d)?.reshape((n, d))?;
        let dv = all.narrow(0, n * d, n * d)?.reshape((n, d))?;
        let dtau = all.narrow(0, 2 * n * d, n)?;
        Ok((Some(du), Some(dv), Some(dtau)))
    }
}

/// The gradients of [`InfoNcePair`] with respect to u, v (N x D each) and tau (N), scaled
/// by the upstream gradient `g`, flattened into one vector of 2 N D + N values.
struct InfoNcePairGrad {
    symmetric: bool,
    g: f32,
    saved: Mutex<Option<(Vec<f32>, Stats)>>,
}

impl CustomOp3 for InfoNcePairGrad {
    fn name(&self) -> &'static str {
        "info-nce-of-pair-grad"
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
        let Pair { u, v, tau, n, d } = pair_inputs([s1, s2, s3], [l1, l2, l3], "info_nce_of_pair (backward)")?;
        let (mut ds, stats) = match self.saved.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some((s, stats)) if s.len() == n * n => (s, Some(stats)),
            _ => (scores(u, v, n, d), None),
        };
        let dtau = backward_in_place(&mut ds, tau, n, self.symmetric, self.g, stats);
        let mut out = vec![0f32; 2 * n * d + n];
        let (du, rest) = out.split_at_mut(n * d);
        let (dv, dt) = rest.split_at_mut(n * d);
        // SAFETY: ds is (n, n) row-major; u, v, du, dv are (n, d) row-major. du = dS v and
        // dv = dS^T u (dS read with row stride 1 and column stride n).
        unsafe {
            product(n, d, n, (du.as_mut_ptr(), d, 1), (ds.as_ptr(), n, 1), (v.as_ptr(), d, 1));
            product(n, d, n, (dv.as_mut_ptr(), d, 1), (ds.as_ptr(), 1, n), (u.as_ptr(), d, 1));
        }
        dt.copy_from_slice(&dtau);
        Ok((CpuStorage::F32(out), Shape::from(2 * n * d + n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_kernel::max_abs_diff as max_diff;
    use crate::loss::info_nce_rows;
    use candle_core::{Device, Var};

    /// Loss and gradients bit for bit on 1 and on 2 threads, and with the kernels compiled
    /// for this CPU's vectors or for the baseline (N spanning several tasks, and a partial
    /// last one).
    #[test]
    fn same_bits_on_any_number_of_threads() {
        let dev = Device::Cpu;
        for n in [5usize, 300, 1100] {
            let s = Tensor::rand(-1f32, 1., (n, n), &dev).unwrap();
            let tau = Tensor::rand(0.05f32, 1., n, &dev).unwrap();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let (vs, vt) = (Var::from_tensor(&s).unwrap(), Var::from_tensor(&tau).unwrap());
                    let loss = info_nce_in_batch(vs.as_tensor(), vt.as_tensor(), true).unwrap();
                    let g = loss.backward().unwrap();
                    let bits = |t: &Tensor| -> Vec<u32> {
                        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
                    };
                    (
                        bits(&loss.reshape(1).unwrap()),
                        bits(g.get(vs.as_tensor()).unwrap()),
                        bits(g.get(vt.as_tensor()).unwrap()),
                    )
                })
            };
            let baseline = crate::cpu_kernel::force_baseline(|| run(2));
            assert!(run(1) == run(2), "n {n}: the result depends on the thread count");
            assert!(run(2) == baseline, "n {n}: the result depends on the vector width");
        }
    }

    /// The pair form (the product inside the op) gives the value and the gradients with
    /// respect to u, v and tau of the score form on u v^T, symmetric or not, and the same
    /// bits on 1 and 2 threads and on every vector width.
    #[test]
    fn the_pair_form_matches_the_score_form() {
        let dev = Device::Cpu;
        for (n, d, symmetric) in [(1usize, 3usize, true), (7, 5, false), (300, 32, true), (1100, 16, true)] {
            let u = Var::from_tensor(&Tensor::rand(-0.5f32, 0.5, (n, d), &dev).unwrap()).unwrap();
            let v = Var::from_tensor(&Tensor::rand(-0.5f32, 0.5, (n, d), &dev).unwrap()).unwrap();
            let tau = Var::from_tensor(&Tensor::rand(0.05f32, 1., n, &dev).unwrap()).unwrap();
            let grads = |loss: &Tensor| {
                let g = loss.backward().unwrap();
                [u.as_tensor(), v.as_tensor(), tau.as_tensor()].map(|t| g.get(t).unwrap().clone())
            };
            let s = u.as_tensor().matmul(&v.as_tensor().t().unwrap()).unwrap();
            let reference = info_nce_in_batch(&s, tau.as_tensor(), symmetric).unwrap();
            let pair = info_nce_of_pair(u.as_tensor(), v.as_tensor(), tau.as_tensor(), symmetric).unwrap();
            let (a, b) = (pair.to_scalar::<f32>().unwrap(), reference.to_scalar::<f32>().unwrap());
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "n {n}: {a} vs {b}");
            for (x, y) in grads(&pair).iter().zip(grads(&reference).iter()) {
                assert!(max_diff(x, y) < 1e-5, "n {n}: gradient differs by {}", max_diff(x, y));
            }
            let bits = |threads: usize| {
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                    let loss = info_nce_of_pair(u.as_tensor(), v.as_tensor(), tau.as_tensor(), symmetric).unwrap();
                    let mut out = vec![loss.to_scalar::<f32>().unwrap().to_bits()];
                    for g in grads(&loss) {
                        out.extend(g.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()));
                    }
                    out
                })
            };
            let baseline = crate::cpu_kernel::force_baseline(|| bits(2));
            assert!(bits(1) == bits(2) && bits(2) == baseline, "n {n}: depends on threads or vector width");
        }
    }

    /// Same value and gradients (w.r.t. scores and temperatures) as the op-by-op version.
    #[test]
    fn fused_matches_op_by_op_value_and_gradients() {
        let dev = Device::Cpu;
        for (n, symmetric) in [(1usize, true), (5, true), (5, false), (67, true), (300, true)] {
            let s = Var::from_tensor(&Tensor::rand(-1f32, 1., (n, n), &dev).unwrap()).unwrap();
            let tau = Var::from_tensor(&Tensor::rand(0.05f32, 1., n, &dev).unwrap()).unwrap();
            let rows = info_nce_rows(s.as_tensor(), tau.as_tensor()).unwrap();
            let reference = if symmetric {
                let cols = info_nce_rows(&s.as_tensor().t().unwrap().contiguous().unwrap(), tau.as_tensor()).unwrap();
                ((rows + cols).unwrap() * 0.5).unwrap()
            } else {
                rows
            };
            let fused = info_nce_in_batch(s.as_tensor(), tau.as_tensor(), symmetric).unwrap();
            let (a, b) = (reference.to_scalar::<f32>().unwrap(), fused.to_scalar::<f32>().unwrap());
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "n {n}: {a} vs {b}");
            let (g1, g2) = ((reference * 3.0).unwrap().backward().unwrap(), (fused * 3.0).unwrap().backward().unwrap());
            for v in [&s, &tau] {
                let (x, y) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
                let scale =
                    x.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
                // Temperatures near 0.05 amplify f32 rounding (of both versions) by 1/tau^2.
                assert!(
                    max_diff(x, y) <= 1e-4 * scale,
                    "n {n}: gradient differs by {} (scale {scale})",
                    max_diff(x, y)
                );
            }
        }
    }
}

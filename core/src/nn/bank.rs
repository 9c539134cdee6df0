//! A bank of G expert MLPs of the same widths reading the same input, evaluated together:
//! the output is the experts' outputs side by side, (N, G H), expert g in columns
//! [g H, (g + 1) H).
//!
//! Each expert keeps its own weights under its own name (`{name}.{layer}.weight`, exactly
//! as a separate [`Mlp`](super::mlp::Mlp) names them), but the bank runs them as few, large
//! products: the first layers as one dense layer over the concatenated weights (one gemm
//! forward; backward, one gemm for the input's gradient, which is then the sum over the
//! experts with no per-expert gradient to add up), the deeper layers as one grouped op
//! (a gemm per expert on column blocks, no copies). Run one by one, PLE's four experts
//! cost four small gemms a layer, and backward three extra passes adding up the input's
//! gradient. A batch of a few rows (the single-instance latency path) runs the experts one
//! by one instead: there, copying the weights side by side would cost more than the products.
//! And when nothing tracks a gradient (a loaded bundle predicting one instance), the bank
//! reads its weights in place and writes every expert's matrix-vector products straight into
//! its output: one tensor for the bank instead of an op per expert and layer. A what-if
//! batch (rows that are one instance with a feature or two changed) runs its first two
//! layers per expert on the weights in place too, through `nn::shared_rows`.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;

use super::linear::{add_bias, column_sum, dense, dense_row, fused_applies, linear, Linear, GEMV_ROWS};
use super::relu::{relu, relu_grad};
use super::shared_rows::{transpose, two_layers_shared_rows, Second, WhatIfRows};
use crate::cpu_kernel::{f32_slice, product, with_f32_slices, written_by};

/// Up to this many rows the experts run one by one (see the module's note).
const ONE_BY_ONE_ROWS: usize = 16;

#[derive(Clone, Debug)]
pub struct ExpertBank {
    /// `layers[l][g]`: layer l of expert g.
    layers: Vec<Vec<Linear>>,
    groups: usize,
    in_dim: usize,
    dropout: f32,
    /// Each expert's second layer's weights transposed, for what-if batches
    /// ([`Self::forward_what_if`]), made on the first: that path runs only on weights
    /// that track no gradient, which never change.
    second_transposed: OnceLock<Vec<Vec<f32>>>,
}

/// `{prefix}0`, `{prefix}1`, ...: the names of `n` experts.
pub fn expert_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|e| format!("{prefix}{e}")).collect()
}

impl ExpertBank {
    /// One expert per name, its layers under `vb.pp(name)` as `0`, `1`, ...
    pub fn new(in_dim: usize, widths: &[usize], dropout: f32, names: &[String], vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::with_capacity(widths.len());
        let mut d = in_dim;
        for (i, &w) in widths.iter().enumerate() {
            let layer =
                names.iter().map(|name| linear(d, w, vb.pp(name).pp(i.to_string()))).collect::<Result<Vec<_>>>()?;
            layers.push(layer);
            d = w;
        }
        Ok(Self { layers, groups: names.len(), in_dim, dropout, second_transposed: OnceLock::new() })
    }

    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Width of one expert's output.
    pub fn out_dim(&self) -> usize {
        self.layers.last().and_then(|l| l.first()).map_or(self.in_dim, |l| l.bias().dims1().unwrap_or(0))
    }

    /// (N, G H): every expert's output, side by side.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.groups == 0 {
            candle_core::bail!("an expert bank with no experts");
        }
        let Some((first, deeper)) = self.layers.split_first() else {
            return Tensor::cat(&vec![x.clone(); self.groups], 1);
        };
        if !train && x.dim(0)? <= GEMV_ROWS {
            if let Some(out) = self.forward_untracked(x)? {
                return Ok(out);
            }
        }
        let mut rest = deeper;
        let mut h = match self.forward_what_if(x, train)? {
            Some(h) => {
                rest = &deeper[1..];
                h
            }
            None if x.dim(0)? <= ONE_BY_ONE_ROWS => {
                let outs = (0..self.groups)
                    .map(|g| {
                        self.layers
                            .iter()
                            .try_fold(x.clone(), |h, layer| self.dropout(layer[g].forward_relu(&h)?, train))
                    })
                    .collect::<Result<Vec<_>>>()?;
                return Tensor::cat(&outs, 1);
            }
            None => {
                let (w, b) = joined(first)?;
                self.dropout(dense(x, &w, &b, true)?, train)?
            }
        };
        for layer in rest {
            let (w, b) = joined(layer)?;
            h = self.dropout(grouped_dense(&h, &w, &b, self.groups)?, train)?;
        }
        Ok(h)
    }

    /// The first two layers' output on a what-if batch (`nn::shared_rows`: rows that are
    /// row 0 with a few inputs changed, predicted by a loaded bundle), each expert's weights
    /// read in place; `None` for any other batch, in training, or when a weight tracks a
    /// gradient.
    fn forward_what_if(&self, x: &Tensor, train: bool) -> Result<Option<Tensor>> {
        let [first, second, ..] = &self.layers[..] else { return Ok(None) };
        let n = x.dim(0)?;
        if train || n <= GEMV_ROWS || x.rank() != 2 || x.dim(1)? != self.in_dim {
            return Ok(None);
        }
        let weights = first.iter().zip(second).flat_map(|(a, b)| [a.weight(), a.bias(), b.weight(), b.bias()]);
        let tensors: Vec<&Tensor> = std::iter::once(x).chain(weights).collect();
        if tensors.iter().any(|t| t.track_op()) {
            return Ok(None);
        }
        let (g, m) = (self.groups, second[0].bias().dims1()?);
        let out = with_f32_slices(&tensors, |s| {
            let rows = WhatIfRows::find(s[0], n)?;
            let transposed = self
                .second_transposed
                .get_or_init(|| s[1..].chunks_exact(4).map(|p| transpose(p[2], m, p[2].len() / m)).collect());
            let mut out = vec![0f32; n * g * m];
            for (e, p) in s[1..].chunks_exact(4).enumerate() {
                let second = Second { w: p[2], wt: &transposed[e], b: p[3] };
                let y = two_layers_shared_rows(&rows, s[0], (p[0], p[1]), second)?;
                for (o, yr) in out.chunks_exact_mut(g * m).zip(y.chunks_exact(m)) {
                    o[e * m..][..m].copy_from_slice(yr);
                }
            }
            Some(out)
        });
        out.flatten().map(|out| Tensor::from_vec(out, (n, g * m), x.device())).transpose()
    }

    /// The bank's output computed on the weights' storage directly, when neither the input
    /// nor any weight tracks a gradient and all are contiguous f32 on the CPU; `None`
    /// otherwise. The same products, bias and ReLU, in the same order, as the dense layer's
    /// single-row path: the same bits.
    fn forward_untracked(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let weights = self.layers.iter().flatten().flat_map(|l| [l.weight(), l.bias()]);
        let tensors: Vec<&Tensor> = std::iter::once(x).chain(weights).collect();
        // A mis-shaped input goes the op path, which reports it as an error.
        if x.rank() != 2 || x.dim(1)? != self.in_dim || tensors.iter().any(|t| t.track_op()) {
            return Ok(None);
        }
        let (n, g) = (x.dim(0)?, self.groups);
        let mut width = self.in_dim;
        let done = with_f32_slices(&tensors, |s| {
            let (x, mut params) = (s[0], s[1..].chunks_exact(2));
            let mut h: Vec<f32> = Vec::new();
            for (l, layer) in self.layers.iter().enumerate() {
                let out = layer[0].bias().dims1().unwrap_or(0);
                let mut next = vec![0f32; n * g * out];
                for (e, wb) in (&mut params).take(g).enumerate() {
                    let (w, b) = (wb[0], wb[1]);
                    for r in 0..n {
                        let input =
                            if l == 0 { &x[r * width..(r + 1) * width] } else { &h[(r * g + e) * width..][..width] };
                        dense_row(w, b, input, &mut next[(r * g + e) * out..][..out], true);
                    }
                }
                h = next;
                width = out;
            }
            h
        });
        done.map(|h| Tensor::from_vec(h, (n, g * width), x.device())).transpose()
    }

    fn dropout(&self, h: Tensor, train: bool) -> Result<Tensor> {
        if train && self.dropout > 0.0 {
            candle_nn::ops::dropout(&h, self.dropout)
        } else {
            Ok(h)
        }
    }
}

/// The experts' weights of one layer stacked, (G out, in), and their biases, (G out).
fn joined(layer: &[Linear]) -> Result<(Tensor, Tensor)> {
    if let [one] = layer {
        return Ok((one.weight().clone(), one.bias().clone()));
    }
    let w: Vec<&Tensor> = layer.iter().map(Linear::weight).collect();
    let b: Vec<&Tensor> = layer.iter().map(Linear::bias).collect();
    Ok((Tensor::cat(&w, 0)?, Tensor::cat(&b, 0)?))
}

/// relu of a block-diagonal dense layer: x (N, G k), `w` (G m, k) the G experts' weights
/// stacked, `b` (G m); expert g maps columns [g k, (g + 1) k) of x to [g m, (g + 1) m).
fn grouped_dense(x: &Tensor, w: &Tensor, b: &Tensor, groups: usize) -> Result<Tensor> {
    if groups == 1 {
        return dense(x, w, b, true);
    }
    if fused_applies(x, w, b) {
        return x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Grouped { groups });
    }
    let (k, m) = (x.dim(1)? / groups, w.dim(0)? / groups);
    let outs =
        (0..groups).map(|g| x.narrow(1, g * k, k)?.matmul(&w.narrow(0, g * m, m)?.t()?)).collect::<Result<Vec<_>>>()?;
    relu(&Tensor::cat(&outs, 1)?.broadcast_add(b)?)
}

struct Grouped {
    groups: usize,
}

/// (n, g k) of x, (g m, k) of w, checked against each other.
fn grouped_dims(lx: &Layout, lw: &Layout, groups: usize, op: &str) -> Result<(usize, usize, usize)> {
    let (n, gk) = lx.shape().dims2()?;
    let (gm, k) = lw.shape().dims2()?;
    if groups == 0 || gk != groups * k || gm % groups != 0 {
        candle_core::bail!("{op}: input (.., {gk}) and weights ({gm}, {k}) for {groups} experts");
    }
    Ok((n, k, gm / groups))
}

impl CustomOp3 for Grouped {
    fn name(&self) -> &'static str {
        "adaftr-grouped-dense"
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
        let op = "grouped dense layer";
        let (x, w, b) =
            (f32_slice(s1, l1, op, "input")?, f32_slice(s2, l2, op, "weight")?, f32_slice(s3, l3, op, "bias")?);
        let g = self.groups;
        let (n, k, m) = grouped_dims(l1, l2, g, op)?;
        if b.len() != g * m {
            candle_core::bail!("{op}: bias of {} for {g} experts of width {m}", b.len());
        }
        let width = g * m;
        // SAFETY: expert e reads columns [e k, (e+1) k) of x (n x g k), rows [e m, (e+1) m) of
        // w (g m x k) as its transpose, and writes columns [e m, (e+1) m) of y: all of y.
        let mut y = unsafe {
            written_by(n * width, |y| {
                for e in 0..g {
                    product(
                        n,
                        m,
                        k,
                        (y.add(e * m), width, 1),
                        (x.as_ptr().add(e * k), g * k, 1),
                        (w.as_ptr().add(e * m * k), 1, k),
                    );
                }
            })
        };
        add_bias(&mut y, b, true);
        Ok((CpuStorage::F32(y), Shape::from((n, width))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = relu_grad(grad, y)?;
        let grad_x = g.apply_op2_no_bwd(w, &GroupedGradInput { groups: self.groups })?;
        let grad_w = g.apply_op2_no_bwd(x, &GroupedGradWeight { groups: self.groups })?;
        Ok((Some(grad_x), Some(grad_w), Some(column_sum(&g)?)))
    }
}

/// d/dx: block e of the input's gradient is block e of the output's gradient times W_e
/// (with one group, a dense layer's).
pub(super) struct GroupedGradInput {
    pub(super) groups: usize,
}

impl CustomOp2 for GroupedGradInput {
    fn name(&self) -> &'static str {
        "adaftr-grouped-dense-grad-input"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let op = "grouped dense layer (backward)";
        let (gy, w) = (f32_slice(s1, l1, op, "gradient")?, f32_slice(s2, l2, op, "weight")?);
        let g = self.groups;
        let (n, gm) = l1.shape().dims2()?;
        let (gm2, k) = l2.shape().dims2()?;
        if gm != gm2 || g == 0 || gm % g != 0 {
            candle_core::bail!("{op}: gradient (.., {gm}) and weights ({gm2}, {k}) for {g} experts");
        }
        let m = gm / g;
        // SAFETY: (n x m block e of gy) times (m x k rows of w) into block e of out, for
        // every block of out.
        let out = unsafe {
            written_by(n * g * k, |out| {
                for e in 0..g {
                    product(
                        n,
                        k,
                        m,
                        (out.add(e * k), g * k, 1),
                        (gy.as_ptr().add(e * m), gm, 1),
                        (w.as_ptr().add(e * m * k), k, 1),
                    );
                }
            })
        };
        Ok((CpuStorage::F32(out), Shape::from((n, g * k))))
    }
}

/// d/dW: W_e's gradient is block e of the output's gradient, transposed, times block e of x
/// (with one group, a dense layer's).
pub(super) struct GroupedGradWeight {
    pub(super) groups: usize,
}

impl CustomOp2 for GroupedGradWeight {
    fn name(&self) -> &'static str {
        "adaftr-grouped-dense-grad-weight"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let op = "grouped dense layer (backward)";
        let (gy, x) = (f32_slice(s1, l1, op, "gradient")?, f32_slice(s2, l2, op, "input")?);
        let g = self.groups;
        let (n, gm) = l1.shape().dims2()?;
        let (n2, gk) = l2.shape().dims2()?;
        if n != n2 || g == 0 || gm % g != 0 || gk % g != 0 {
            candle_core::bail!("{op}: gradient ({n}, {gm}) and input ({n2}, {gk}) for {g} experts");
        }
        let (m, k) = (gm / g, gk / g);
        // SAFETY: (m x n: block e of gy, transposed) times (n x k: block e of x) into rows
        // [e m, (e+1) m) of out, for every row of out.
        let out = unsafe {
            written_by(gm * k, |out| {
                for e in 0..g {
                    product(
                        m,
                        k,
                        n,
                        (out.add(e * m * k), k, 1),
                        (gy.as_ptr().add(e * m), 1, gm),
                        (x.as_ptr().add(e * k), gk, 1),
                    );
                }
            })
        };
        Ok((CpuStorage::F32(out), Shape::from((gm, k))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_kernel::max_abs_diff;
    use crate::nn::init::seeded_var_builder;
    use crate::nn::mlp::Mlp;
    use candle_core::{Device, Var};

    /// The bank computes what its experts compute one by one, and every weight and the input
    /// get the same gradient, on a large batch (side by side) and a small one (one by one).
    #[test]
    fn matches_its_experts_run_one_by_one() {
        for rows in [2501, ONE_BY_ONE_ROWS] {
            matches_at(rows);
        }
    }

    fn matches_at(rows: usize) {
        let dev = Device::Cpu;
        let names: Vec<String> = ["ctr0", "shared0", "shared1"].iter().map(|s| s.to_string()).collect();
        // Odd widths and enough rows for several parallel chunks; three layers, so the
        // grouped op runs twice.
        let widths = [19, 11, 7];
        let (vb, params) = seeded_var_builder(5, &dev);
        let bank = ExpertBank::new(13, &widths, 0.0, &names, vb.clone()).unwrap();
        let experts: Vec<Mlp> = names.iter().map(|n| Mlp::new(13, &widths, 0.0, vb.pp(n)).unwrap()).collect();
        assert_eq!((bank.groups(), bank.out_dim()), (3, 7));
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (rows, 13), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1.0, (rows, 21), &dev).unwrap();
        let ours = bank.forward_t(&x, true).unwrap();
        let one_by_one =
            Tensor::cat(&experts.iter().map(|e| e.forward_t(&x, true).unwrap()).collect::<Vec<_>>(), 1).unwrap();
        assert!(max_abs_diff(&ours, &one_by_one) < 1e-5);
        let ga = (&ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&one_by_one * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let mut checked = 0;
        for (name, v) in params.sorted() {
            let (a, b) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
            let d = max_abs_diff(a, b);
            assert!(d < 1e-3 * (1.0 + max_abs_diff(b, &b.zeros_like().unwrap())), "{name}: gradient differs by {d}");
            checked += 1;
        }
        assert_eq!(checked, 3 * 3 * 2, "every expert's weight and bias has a gradient");
        assert!(max_abs_diff(ga.get(&x).unwrap(), gb.get(&x).unwrap()) < 1e-3);
    }

    /// Another dtype (as another device would) takes candle's ops, and still computes what
    /// the experts compute one by one.
    #[test]
    fn other_dtypes_take_candle_ops() {
        let dev = Device::Cpu;
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, candle_core::DType::F64, &dev);
        let names: Vec<String> = (0..3).map(|e| format!("e{e}")).collect();
        let bank = ExpertBank::new(6, &[5, 4], 0.0, &names, vb.clone()).unwrap();
        let x = Tensor::randn(0f64, 1.0, (40, 6), &dev).unwrap();
        let ours = bank.forward_t(&x, false).unwrap();
        let experts: Vec<Tensor> =
            names.iter().map(|n| Mlp::new(6, &[5, 4], 0.0, vb.pp(n)).unwrap().forward_t(&x, false).unwrap()).collect();
        assert_eq!(ours.dtype(), candle_core::DType::F64);
        assert!(max_abs_diff(&ours, &Tensor::cat(&experts, 1).unwrap()) < 1e-6);
    }

    #[test]
    fn the_same_bits_on_one_and_two_threads() {
        let dev = Device::Cpu;
        let names: Vec<String> = (0..4).map(|e| format!("e{e}")).collect();
        let (vb, params) = seeded_var_builder(2, &dev);
        let bank = ExpertBank::new(40, &[64, 32], 0.0, &names, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3000, 40), &dev).unwrap();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                let y = bank.forward_t(&x, true).unwrap();
                let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let mut out = vec![y.flatten_all().unwrap().to_vec1::<f32>().unwrap()];
                for (_, v) in params.sorted() {
                    out.push(grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
                }
                out
            })
        };
        assert_eq!(run(1), run(2));
    }
}

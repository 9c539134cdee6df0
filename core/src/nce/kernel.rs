//! The arithmetic of in-batch InfoNCE on a dense (N, N) score matrix, for the ops in
//! `nce/mod.rs`: the loss with its row and column log-sum-exps, and the backward pass in
//! place. Each direction is two sweeps over the matrix; the exponential is a polynomial the
//! compiler vectorises, and the sweeps run compiled for the CPU's vector width
//! (`vectorised_fn`). Work is split into rayon tasks whose size depends on N only, and every
//! sum has a fixed order: the same bits on any number of threads and any vector width.

use rayon::prelude::*;

use crate::cpu_kernel::vectorised_fn;

/// The row and column log-sum-exps (columns empty unless symmetric).
pub(super) type Stats = (Vec<f32>, Vec<f32>);

/// The loss of the (N, N) scores `s` and the statistics the backward pass reuses.
pub(super) fn loss_and_stats(s: &[f32], tau: &[f32], n: usize, symmetric: bool) -> (f32, Stats) {
    let inv: Vec<f32> = tau.iter().map(|t| 1.0 / t).collect();
    let mean =
        |lse: &[f32]| lse.iter().enumerate().map(|(i, l)| (l - s[i * n + i] * inv[i]) as f64).sum::<f64>() / n as f64;
    let rows = nce_stats(s, &inv, n, false);
    let mut loss = mean(&rows);
    let cols = if symmetric { nce_stats(s, &inv, n, true) } else { Vec::new() };
    if symmetric {
        loss = 0.5 * (loss + mean(&cols));
    }
    (loss as f32, (rows, cols))
}

/// The backward pass in place: `d` holds the (N, N) scores on entry and dloss/ds, times the
/// upstream gradient `g`, on exit; returns dloss/dtau (times `g`). `stats` from the forward
/// pass, or recomputed when absent.
pub(super) fn backward_in_place(
    d: &mut [f32],
    tau: &[f32],
    n: usize,
    symmetric: bool,
    g: f32,
    stats: Option<Stats>,
) -> Vec<f32> {
    let inv: Vec<f32> = tau.iter().map(|t| 1.0 / t).collect();
    let wr = g * if symmetric { 0.5 } else { 1.0 } / n as f32;
    let wc = if symmetric { g * 0.5 / n as f32 } else { 0.0 };
    let (rows, cols) = match stats {
        Some((r, c)) if r.len() == n && (!symmetric || c.len() == n) => (r, c),
        _ => (nce_stats(d, &inv, n, false), if symmetric { nce_stats(d, &inv, n, true) } else { Vec::new() }),
    };
    let diag: Vec<f32> = (0..n).map(|i| d[i * n + i]).collect();
    // dS_ij = wr (p_ij - d_ij) / tau_i + wc (q_ij - d_ij) / tau_j, with p the row softmax
    // of s_i. / tau_i and q the column softmax of s_.j / tau_j; per row also
    // sum_j p_ij s_ij (for dtau_i) and, per column, sum_k q_kj s_kj (for dtau_j).
    let step = grad_chunk_rows(n);
    let results: Vec<(Vec<f32>, Vec<f32>)> = d
        .par_chunks_mut(step * n.max(1))
        .enumerate()
        .map(|(p, d)| grad_rows(&inv, &rows, &cols, n, [wr, wc], p * step, d))
        .collect();
    let psum: Vec<f32> = results.iter().flat_map(|(p, _)| p.iter().copied()).collect();
    let mut qsum = vec![0f32; n];
    for (_, q) in &results {
        for (a, b) in qsum.iter_mut().zip(q) {
            *a += b;
        }
    }
    (0..n)
        .map(|i| {
            let it2 = inv[i] * inv[i];
            wr * it2 * (diag[i] - psum[i]) + wc * it2 * (diag[i] - qsum[i])
        })
        .collect()
}

/// e^x for f32 in plain arithmetic that the compiler vectorises (libm's expf is a call per
/// element): Cephes' expf polynomial on x - n ln 2, |error| about 1 ulp; x is clamped to
/// [-87.3, 88], so very negative arguments give ~1e-38 instead of 0 (the kernel only
/// exponentiates values <= 0).
// Cephes' coefficients, kept digit for digit as published.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(super) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.3, 88.0);
    // t's low mantissa bits hold n = round(x log2 e) in two's complement.
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * r2 + r + 1.0;
    // 2^n built from those bits: n + 127 lands in the exponent field, the bits above shift
    // out. (`n as i32` gives the same value, but its saturating conversion does not
    // vectorise: it ran one element at a time and was most of the kernel's time.)
    y * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

/// Rows (or columns) per parallel task of the statistics: fixed, and each row's and column's
/// statistic is computed by one task in one order, so the values do not depend on how many
/// threads rayon runs.
const STATS_CHUNK: usize = 64;

/// Rows per parallel task of the backward pass. The column sums of the tasks are added in
/// task order; the task size depends on N only, never on the thread count, so the
/// gradients are the same bits on any number of threads. About 64 tasks per batch.
fn grad_chunk_rows(n: usize) -> usize {
    n.div_ceil(64).max(16)
}

/// Row statistics lse_i = logsumexp_j s_ij / tau_i, or (`cols`) column statistics
/// clse_j = logsumexp_k s_kj / tau_j, the latter computed sweeping rows in memory order.
fn nce_stats(s: &[f32], inv_tau: &[f32], n: usize, cols: bool) -> Vec<f32> {
    let mut out = vec![0f32; n];
    if !cols {
        out.par_chunks_mut(STATS_CHUNK).enumerate().for_each(|(c, o)| row_stats(s, inv_tau, n, c * STATS_CHUNK, o));
    } else {
        out.par_chunks_mut(STATS_CHUNK).enumerate().for_each(|(c, o)| col_stats(s, inv_tau, n, c * STATS_CHUNK, o));
    }
    out
}

vectorised_fn! {
    /// Row statistics of rows i0.. (one per element of `out`).
    fn row_stats(s: &[f32], inv_tau: &[f32], n: usize, i0: usize, out: &mut [f32]) {
        for (r, v) in out.iter_mut().enumerate() {
            let i = i0 + r;
            let row = &s[i * n..(i + 1) * n];
            let it = inv_tau[i];
            let m = lanes_max(row) * it;
            *v = m + lanes_sum(row, |x| exp_f32(x * it - m)).ln();
        }
    }
}

vectorised_fn! {
    /// Column statistics of columns j0.. (one per element of `o`), sweeping rows in memory order.
    fn col_stats(s: &[f32], inv_tau: &[f32], n: usize, j0: usize, o: &mut [f32]) {
        let w = o.len();
        let it = &inv_tau[j0..j0 + w];
        let mut mx = vec![f32::NEG_INFINITY; w];
        for k in 0..n {
            for (m, &x) in mx.iter_mut().zip(&s[k * n + j0..k * n + j0 + w]) {
                *m = m.max(x);
            }
        }
        for (m, &t) in mx.iter_mut().zip(it) {
            *m *= t;
        }
        let mut sum = vec![0f32; w];
        for k in 0..n {
            for (((acc, &x), &m), &t) in sum.iter_mut().zip(&s[k * n + j0..k * n + j0 + w]).zip(&mx).zip(it) {
                *acc += exp_f32(x * t - m);
            }
        }
        for ((v, m), acc) in o.iter_mut().zip(&mx).zip(&sum) {
            *v = m + acc.ln();
        }
    }
}

/// Width of the independent accumulators of the row reductions below. A float sum or max
/// folded into one variable is a dependency chain the compiler may not reorder, so it runs
/// one element at a time (the exponentials included); LANES partial results vectorise.
const LANES: usize = 16;

#[inline(always)]
fn lanes_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.max(x);
        }
    }
    rest.iter().chain(&acc).fold(f32::NEG_INFINITY, |m, &x| m.max(x))
}

#[inline(always)]
fn lanes_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&x| f(x)).sum::<f32>()
}

vectorised_fn! {
    /// Rows i0.. of dS, in place: `d` holds whole rows of s on entry and of dS on exit.
    /// Returns their sum_j p_ij s_ij and, when the loss is symmetric (wc != 0), these rows'
    /// share of every column's sum_k q_kj s_kj.
    fn grad_rows(
        inv: &[f32],
        rows: &[f32],
        cols: &[f32],
        n: usize,
        weights: [f32; 2],
        i0: usize,
        d: &mut [f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let [wr, wc] = weights;
        let mut psum = Vec::with_capacity(d.len() / n);
        let mut qsum = vec![0f32; if wc != 0.0 { n } else { 0 }];
        for (r, drow) in d.chunks_mut(n).enumerate() {
            let i = i0 + r;
            let (it, lse) = (inv[i], rows[i]);
            // sum_j p_ij s_ij in LANES partial sums (see `lanes_sum`), so that the loop
            // over j vectorises.
            let mut ps = [0f32; LANES];
            for j0 in (0..n).step_by(LANES) {
                let w = LANES.min(n - j0);
                let d = &mut drow[j0..j0 + w];
                if wc != 0.0 {
                    let (iv, cl, qs) = (&inv[j0..j0 + w], &cols[j0..j0 + w], &mut qsum[j0..j0 + w]);
                    for k in 0..w {
                        let x = d[k];
                        let p = exp_f32(x * it - lse);
                        let q = exp_f32(x * iv[k] - cl[k]);
                        ps[k] += p * x;
                        qs[k] += q * x;
                        d[k] = wr * p * it + wc * q * iv[k];
                    }
                } else {
                    for k in 0..w {
                        let x = d[k];
                        let p = exp_f32(x * it - lse);
                        ps[k] += p * x;
                        d[k] = wr * p * it;
                    }
                }
            }
            drow[i] -= (wr + wc) * it;
            psum.push(ps.iter().sum());
        }
        (psum, qsum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        for i in 0..20_000 {
            let x = -87.0 + i as f32 * 0.00875;
            let (a, b) = (exp_f32(x), x.exp());
            assert!((a - b).abs() <= 4.0 * f32::EPSILON * b.max(f32::MIN_POSITIVE), "{x}: {a} vs {b}");
        }
    }
}

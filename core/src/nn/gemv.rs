//! y = W x for one row x: the dense layers' product on the single-instance path (the
//! demo's every edit, `Bundle::predict`).
//!
//! There the product reads each weight once, so its speed is how fast the weights stream
//! from cache. gemm's one-row kernel managed about a third of that on an AVX-512 machine,
//! which made PLE's four experts (1.7 MB of weights) most of a prediction. This kernel
//! keeps four rows' dot products in flight in 16 lanes each (enough independent sums to
//! cover the adder's latency), sums the lanes in one fixed order, and runs compiled for the
//! CPU's vector width (`cpu_kernel::vectorised`), with the same bits on every width.

use crate::cpu_kernel::vectorised_fn;

const LANES: usize = 16;

vectorised_fn! {
    /// out_j = <w_j, x> for every row w_j of `w` ((out.len(), x.len()), row-major).
    pub(crate) fn gemv(w: &[f32], x: &[f32], out: &mut [f32]) {
        debug_assert_eq!(w.len(), x.len() * out.len());
        gemv_rows(w, x, out)
    }
}

#[inline(always)]
fn gemv_rows(w: &[f32], x: &[f32], out: &mut [f32]) {
    let k = x.len();
    let mut rows = out.chunks_exact_mut(4);
    let mut blocks = w.chunks_exact(4 * k);
    for (o, b) in (&mut rows).zip(&mut blocks) {
        let (r01, r23) = b.split_at(2 * k);
        let ((r0, r1), (r2, r3)) = (r01.split_at(k), r23.split_at(k));
        o.copy_from_slice(&dot4([r0, r1, r2, r3], x));
    }
    for (o, r) in rows.into_remainder().iter_mut().zip(blocks.remainder().chunks_exact(k.max(1))) {
        *o = dot1(r, x);
    }
}

/// One row's LANES partial sums and the tail, added up in a fixed order: 16 -> 8 -> 4 ->
/// 2 -> 1, then the tail's products in order.
#[inline(always)]
fn finish(mut a: [f32; LANES], row_tail: &[f32], x_tail: &[f32]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            a[l] += a[l + width];
        }
    }
    row_tail.iter().zip(x_tail).fold(a[0], |s, (&wv, &xv)| s + wv * xv)
}

/// The first `body` elements of `r` as whole chunks of LANES.
#[inline(always)]
fn lanes(r: &[f32], body: usize) -> impl Iterator<Item = &[f32; LANES]> {
    r[..body].chunks_exact(LANES).map(|c| c.try_into().expect("a full chunk"))
}

/// Four dot products with `x` at once: four independent sums in flight.
#[inline(always)]
fn dot4(w: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let body = x.len() / LANES * LANES;
    let (x4, w0, w1) = (lanes(x, body), lanes(w[0], body), lanes(w[1], body));
    for ((((xc, c0), c1), c2), c3) in x4.zip(w0).zip(w1).zip(lanes(w[2], body)).zip(lanes(w[3], body)) {
        for l in 0..LANES {
            a0[l] += c0[l] * xc[l];
            a1[l] += c1[l] * xc[l];
            a2[l] += c2[l] * xc[l];
            a3[l] += c3[l] * xc[l];
        }
    }
    let xt = &x[body..];
    [
        finish(a0, &w[0][body..], xt),
        finish(a1, &w[1][body..], xt),
        finish(a2, &w[2][body..], xt),
        finish(a3, &w[3][body..], xt),
    ]
}

/// One dot product (the rows left over after the blocks of four).
#[inline(always)]
fn dot1(w: &[f32], x: &[f32]) -> f32 {
    let mut a = [0f32; LANES];
    let body = x.len() / LANES * LANES;
    for (wc, xc) in w[..body].chunks_exact(LANES).zip(x[..body].chunks_exact(LANES)) {
        for l in 0..LANES {
            a[l] += wc[l] * xc[l];
        }
    }
    finish(a, &w[body..], &x[body..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 sums, at widths around the lane count and row counts around the block of
    /// four; and every compiled version gives the same bits.
    #[test]
    fn matches_a_plain_sum_and_every_version_agrees() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for (rows, k) in [(1, 1), (3, 15), (4, 16), (5, 17), (9, 272), (256, 272), (1, 32), (130, 63)] {
            let w: Vec<f32> = (0..rows * k).map(|_| next()).collect();
            let x: Vec<f32> = (0..k).map(|_| next()).collect();
            let mut out = vec![0f32; rows];
            gemv(&w, &x, &mut out);
            for (j, &o) in out.iter().enumerate() {
                let exact: f64 = (0..k).map(|i| w[j * k + i] as f64 * x[i] as f64).sum();
                assert!((o as f64 - exact).abs() < 1e-5, "{rows}x{k} row {j}: {o} vs {exact}");
            }
            let mut baseline = vec![0f32; rows];
            crate::cpu_kernel::force_baseline(|| gemv(&w, &x, &mut baseline));
            assert_eq!(out, baseline, "{rows}x{k}");
        }
    }
}

//! y = W x for one row x: the dense layers' product on the single-instance path (the
//! demo's every edit, `Bundle::predict`).
//!
//! There the product reads each weight once, so its speed is how fast the weights stream
//! from cache. gemm's one-row kernel managed about a third of that on an AVX-512 machine,
//! which made PLE's four experts (1.7 MB of weights) most of a prediction. This kernel
//! keeps four rows' dot products in flight in 16 lanes each (enough independent sums to
//! cover the adder's latency) and is compiled three times: for AVX-512, for AVX2 and for
//! the baseline target (on wasm32 with simd128 it vectorises too); the first the CPU has is
//! chosen at run time. No fused multiply-add is allowed to form (Rust never contracts
//! `a * b + c`), and the lanes are summed in one fixed order, so every version gives the
//! same bits: a prediction does not depend on the machine's vector width.

const LANES: usize = 16;

/// out_j = <w_j, x> for every row w_j of `w` ((out.len(), x.len()), row-major).
pub(crate) fn gemv(w: &[f32], x: &[f32], out: &mut [f32]) {
    debug_assert_eq!(w.len(), x.len() * out.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features this version was compiled for.
            return unsafe { gemv_avx512(w, x, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { gemv_avx2(w, x, out) };
        }
    }
    gemv_portable(w, x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gemv_avx512(w: &[f32], x: &[f32], out: &mut [f32]) {
    gemv_portable(w, x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gemv_avx2(w: &[f32], x: &[f32], out: &mut [f32]) {
    gemv_portable(w, x, out)
}

#[inline(always)]
fn gemv_portable(w: &[f32], x: &[f32], out: &mut [f32]) {
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
            let mut portable = vec![0f32; rows];
            gemv_portable(&w, &x, &mut portable);
            assert_eq!(out, portable, "{rows}x{k}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut avx2 = vec![0f32; rows];
                // SAFETY: checked just above.
                unsafe { gemv_avx2(&w, &x, &mut avx2) };
                assert_eq!(out, avx2, "{rows}x{k}");
            }
        }
    }
}

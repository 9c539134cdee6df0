//! The dense layer on a batch whose rows are one row with a few inputs changed: the demo's
//! what-if sweep, sensitivity panel and relatedness map, where every row is the visitor's
//! instance with one or two features set to other values.
//!
//! There y_r = W x_0 + b + W (x_r - x_0), and x_r - x_0 is zero outside the columns of the
//! changed features (one field's embedding, or the numerics' shared one: 16 of 272 columns
//! in the default model). Rows that changed the same columns form a group, and a group's
//! term is one small product of its changes with those columns of W. PLE's first layers
//! are 60% of a prediction's work, and about a twentieth of that is left.
//!
//! The experts' second layers then dominate, and they follow a ReLU, so their input
//! changes everywhere. But only a few units switch sign when one or two features change:
//! the rest is linear in the change, and [`WhatIfRows::dense_after_relu`] computes it
//! through one small matrix per group (the demo's relatedness map in wasm: 4.4 -> 2.7 ms,
//! `core/examples/what_if.rs`).
//!
//! Whether a batch has this shape is found by comparing each row with row 0, which costs
//! a fraction of one product; a batch of unrelated rows (a CSV file) is given up on at its
//! second row. The results equal the full product's up to rounding (the change's products
//! are added to row 0's instead of summed with them); row 0 is the single-row path's exact
//! bits.

use std::ops::Range;

use super::linear::dense_row;
use super::relu::positive;
use crate::cpu_kernel::product;

/// Worth it while the changed entries are at most this fraction of the batch's inputs
/// (1 / value): past that, the full product with its better kernel wins.
const MAX_CHANGED_SHARE: usize = 4;
/// Narrower layers (the gates, the heads) are left to the full product: the scan would be
/// a visible share of their small cost.
const MIN_OUTPUTS: usize = 16;

/// relu?(x W^T + b) for `n` rows of x (row-major, n x k), W (m x k): `None` when the rows
/// are not mostly row 0's (the caller runs the full product).
pub(crate) fn dense_shared_rows(x: &[f32], w: &[f32], b: &[f32], n: usize, relu: bool) -> Option<Vec<f32>> {
    if b.len() < MIN_OUTPUTS {
        return None;
    }
    let rows = WhatIfRows::find(x, n)?;
    if !rows.fits(w, b) {
        return None;
    }
    let mut y = rows.dense(x, w, b);
    if relu {
        relu_in_place(&mut y);
    }
    Some(y)
}

/// relu(relu(x W1^T + b1) W2^T + b2): two dense layers with ReLU on a what-if batch (see
/// [`WhatIfRows::dense_after_relu`] for the second). `None` where the first layer alone
/// would not take the shared-rows path.
pub(crate) fn two_layers_shared_rows(
    rows: &WhatIfRows,
    x: &[f32],
    first: (&[f32], &[f32]),
    second: Second,
) -> Option<Vec<f32>> {
    let (w1, b1) = first;
    let m = b1.len() * second.b.len();
    if !rows.fits(w1, b1) || m == 0 || second.w.len() != m || second.wt.len() != m {
        return None;
    }
    let h = rows.dense(x, w1, b1);
    let mut y = rows.dense_after_relu(&h, w1, second);
    relu_in_place(&mut y);
    Some(y)
}

fn relu_in_place(y: &mut [f32]) {
    for v in y {
        *v = positive(*v);
    }
}

/// A batch whose rows are its row 0 with a few inputs changed: rows 1.. grouped by the
/// columns in which they differ from row 0.
pub(crate) struct WhatIfRows {
    n: usize,
    k: usize,
    groups: Vec<Group>,
}

struct Group {
    /// The changed columns, ascending.
    cols: Vec<u32>,
    /// The rows (1..n) that changed exactly these columns.
    rows: Vec<usize>,
    /// Their changes x_r - x_0 in those columns, (rows, cols) row-major.
    delta: Vec<f32>,
}

impl WhatIfRows {
    /// The groups of `n` rows of x (row-major); `None` for fewer than two rows or once the
    /// changed entries pass the budget (compared bit for bit).
    pub(crate) fn find(x: &[f32], n: usize) -> Option<Self> {
        if n < 2 || x.is_empty() || !x.len().is_multiple_of(n) {
            return None;
        }
        let k = x.len() / n;
        let budget = n * k / MAX_CHANGED_SHARE;
        let (base, mut used) = (&x[..k], 0usize);
        // A what-if batch has a few groups (one per feature it varies), so a linear search
        // finds a row's group.
        let mut groups: Vec<Group> = Vec::new();
        let mut cols = Vec::new();
        for r in 1..n {
            cols.clear();
            let row = &x[r * k..(r + 1) * k];
            // Sixteen columns at a time (one OR of their bits' differences): most are equal.
            for (c, (a, b)) in row.chunks(16).zip(base.chunks(16)).enumerate() {
                if a.iter().zip(b).fold(0u32, |acc, (x, y)| acc | (x.to_bits() ^ y.to_bits())) == 0 {
                    continue;
                }
                for (j, (x, y)) in a.iter().zip(b).enumerate() {
                    if x.to_bits() != y.to_bits() {
                        cols.push((c * 16 + j) as u32);
                    }
                }
            }
            used += cols.len();
            // One row past a quarter of its columns already says the batch is not of this kind.
            if used > budget || cols.len() * MAX_CHANGED_SHARE > k {
                return None;
            }
            let g = match groups.iter().position(|g| g.cols == cols) {
                Some(g) => g,
                None => {
                    groups.push(Group { cols: cols.clone(), rows: Vec::new(), delta: Vec::new() });
                    groups.len() - 1
                }
            };
            let g = &mut groups[g];
            g.rows.push(r);
            g.delta.extend(cols.iter().map(|&j| row[j as usize] - base[j as usize]));
        }
        Some(Self { n, k, groups })
    }

    /// Whether a dense layer W (m x k), b (m) reads these rows and is wide enough to gain.
    fn fits(&self, w: &[f32], b: &[f32]) -> bool {
        b.len() >= MIN_OUTPUTS && w.len() == b.len() * self.k
    }

    /// x W^T + b (no ReLU), (n, m): row 0's product plus, per group, one small product of
    /// its changes with W's changed columns.
    pub(crate) fn dense(&self, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let (k, m) = (self.k, b.len());
        let mut y = vec![0f32; self.n * m];
        let (row0, rest) = y.split_at_mut(m);
        dense_row(w, b, &x[..k], row0, false);
        let (mut term, mut scratch) = (Vec::new(), Vec::new());
        for group in &self.groups {
            let (cols, rows) = (&group.cols, &group.rows);
            if cols.is_empty() {
                // Rows equal to row 0 take its pre-activation as it is.
                for &r in rows {
                    rest[(r - 1) * m..][..m].copy_from_slice(row0);
                }
                continue;
            }
            let (g, s) = (rows.len(), cols.len());
            term.clear();
            term.resize(g * m, 0.0);
            for run in runs(cols) {
                let (start, len) = (run.start, run.len());
                let col = cols[start] as usize;
                let out = if start == 0 {
                    &mut term
                } else {
                    scratch.clear();
                    scratch.resize(g * m, 0.0);
                    &mut scratch
                };
                // SAFETY: `out` is g x m row-major; the change block is columns
                // start..start+len of the g x s matrix `delta`; W's columns col..col+len read
                // as the len x m matrix W^T (row stride 1, column stride k). All in bounds,
                // nothing overlaps.
                unsafe {
                    product(
                        g,
                        m,
                        len,
                        (out.as_mut_ptr(), m, 1),
                        (group.delta.as_ptr().add(start), s, 1),
                        (w.as_ptr().add(col), 1, k),
                    )
                };
                if start != 0 {
                    for (t, v) in term.iter_mut().zip(&scratch) {
                        *t += v;
                    }
                }
            }
            for (&r, t) in rows.iter().zip(term.chunks_exact(m)) {
                let yr = &mut rest[(r - 1) * m..][..m];
                for ((o, &p), &d) in yr.iter_mut().zip(row0.iter()).zip(t) {
                    *o = p + d;
                }
            }
        }
        y
    }

    /// relu(h) W2^T + b2 (no ReLU after), (n, m2), where h (n, m1) is the pre-activation
    /// [`Self::dense`] gave for a first layer W1 (m1 x k) on these rows; W2 (m2 x m1).
    ///
    /// With a_r = relu(h_r), y_r = y_0 + W2 (a_r - a_0). Where row 0's unit u is active
    /// (the set A) and row r's is too, (a_r - a_0)_u = (h_r - h_0)_u, which is W1's
    /// changed columns times the row's change: over A that part is linear in the change,
    /// and its product with W2 is one s x m2 matrix per group,
    /// M = (W1[A, cols])^T W2[:, A]^T, so a row costs s x m2 instead of m1 x m2. The units
    /// whose sign differs from row 0's add (a_r - a_0 - [u in A] (h_r - h_0))_u =
    /// relu(sign_u h_r,u) with sign_u = -1 on A and +1 off it: zero unless the unit
    /// switched, and few switch when one or two features change. A group too small to
    /// repay its M takes the full product.
    pub(crate) fn dense_after_relu(&self, h: &[f32], w1: &[f32], second: Second) -> Vec<f32> {
        let Second { w: w2, wt: w2t, b: b2 } = second;
        let (n, k, m2) = (self.n, self.k, b2.len());
        let m1 = h.len() / n;
        let mut y = vec![0f32; n * m2];
        let a0: Vec<f32> = h[..m1].iter().map(|&v| positive(v)).collect();
        let (y0, rest) = y.split_at_mut(m2);
        dense_row(w2, b2, &a0, y0, false);
        let active: Vec<usize> = (0..m1).filter(|&u| a0[u] > 0.0).collect();
        let sign: Vec<f32> = a0.iter().map(|&a| if a > 0.0 { -1.0 } else { 1.0 }).collect();
        let out = |r: usize| (r - 1) * m2;
        // Groups too small to repay their M: all their rows in one full product.
        let (mut small, mut large) = (Vec::new(), Vec::new());
        for group in &self.groups {
            let (g, s) = (group.rows.len(), group.cols.len());
            if s == 0 {
                for &r in &group.rows {
                    rest[out(r)..][..m2].copy_from_slice(y0);
                }
            } else if !repays_its_product(g, s, m1, active.len()) {
                small.extend_from_slice(&group.rows);
            } else {
                large.push(group);
            }
        }
        let (mut left, mut part, mut m_t) = (Vec::new(), Vec::new(), Vec::new());
        if !small.is_empty() {
            for &r in &small {
                left.extend(h[r * m1..][..m1].iter().map(|&v| positive(v)));
            }
            part.resize(small.len() * m2, 0.0);
            // SAFETY: left (rows x m1) times W2^T (m1 x m2) into part (rows x m2), all in bounds.
            unsafe {
                product(small.len(), m2, m1, (part.as_mut_ptr(), m2, 1), (left.as_ptr(), m1, 1), (w2t.as_ptr(), m2, 1))
            };
            for (&r, p) in small.iter().zip(part.chunks_exact(m2)) {
                for ((o, &v), &bj) in rest[out(r)..][..m2].iter_mut().zip(p).zip(b2) {
                    *o = v + bj;
                }
            }
        }
        for group in large {
            let (cols, rows) = (&group.cols, &group.rows);
            let (g, s, a) = (rows.len(), cols.len(), active.len());
            // M^T = W1[A, cols]^T (s x a) times W2[:, A]^T (a x m2).
            left.clear();
            for &c in cols {
                left.extend(active.iter().map(|&u| w1[u * k + c as usize]));
            }
            part.clear();
            for &u in &active {
                part.extend_from_slice(&w2t[u * m2..][..m2]);
            }
            m_t.clear();
            m_t.resize(s * m2, 0.0);
            // SAFETY: (s x a) times (a x m2) into m_t (s x m2), all row-major and in bounds.
            unsafe { product(s, m2, a, (m_t.as_mut_ptr(), m2, 1), (left.as_ptr(), a, 1), (part.as_ptr(), m2, 1)) };
            part.clear();
            part.resize(g * m2, 0.0);
            // SAFETY: the group's changes (g x s) times M^T (s x m2) into part (g x m2).
            unsafe {
                product(g, m2, s, (part.as_mut_ptr(), m2, 1), (group.delta.as_ptr(), s, 1), (m_t.as_ptr(), m2, 1))
            };
            for (&r, p) in rows.iter().zip(part.chunks_exact(m2)) {
                let yr = &mut rest[out(r)..][..m2];
                for ((o, &v), &base) in yr.iter_mut().zip(p).zip(y0.iter()) {
                    *o = base + v;
                }
                add_switched(yr, &h[r * m1..][..m1], &sign, w2t);
            }
        }
        y
    }
}

/// Whether a group of `rows` rows that changed `cols` inputs costs less through its M (s x
/// a x m2 once, then s x m2 a row and the switched units) than in full (m1 x m2 a row),
/// with a margin of two for the switched units and the smaller products' lower speed.
fn repays_its_product(rows: usize, cols: usize, width: usize, active: usize) -> bool {
    rows * width.saturating_sub(cols) > 2 * cols * active
}

/// A second dense layer: W (m2 x m1), its transpose (m1 x m2: a unit's outgoing weights
/// as one row) and the bias (m2).
#[derive(Clone, Copy)]
pub(crate) struct Second<'a> {
    pub w: &'a [f32],
    pub wt: &'a [f32],
    pub b: &'a [f32],
}

/// y += sum_u c_u W^T[u] with c_u = relu(sign_u h_u): the units that switched, few of
/// them. Units are tested eight at a time (one OR of their bits), as most give zero.
fn add_switched(y: &mut [f32], h: &[f32], sign: &[f32], wt: &[f32]) {
    const CHUNK: usize = 8;
    let m = y.len();
    for u0 in (0..h.len()).step_by(CHUNK) {
        let units = u0..(u0 + CHUNK).min(h.len());
        let mut c = [0f32; CHUNK];
        for ((c, &v), &sg) in c.iter_mut().zip(&h[units.clone()]).zip(&sign[units.clone()]) {
            *c = positive(v * sg);
        }
        if c.iter().fold(0u32, |acc, v| acc | v.to_bits()) != 0 {
            add_rows(y, &c, &wt[units.start * m..units.end * m]);
        }
    }
}

/// y += c_u W^T[u] for each nonzero c_u, W^T's rows of y.len().
#[inline(always)]
fn add_rows(y: &mut [f32], c: &[f32], wt: &[f32]) {
    for (&cu, w) in c.iter().zip(wt.chunks_exact(y.len())) {
        if cu != 0.0 {
            for (o, &wv) in y.iter_mut().zip(w) {
                *o += cu * wv;
            }
        }
    }
}

/// The (cols x rows) transpose of a row-major (rows x cols) matrix.
pub(crate) fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; rows * cols];
    for (i, row) in a.chunks_exact(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * rows + i] = v;
        }
    }
    t
}

/// The maximal runs of consecutive columns in `cols` (ascending), as index ranges into it.
fn runs(cols: &[u32]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    (1..=cols.len()).filter_map(move |i| {
        if i == cols.len() || cols[i] != cols[i - 1] + 1 {
            let run = start..i;
            start = i;
            Some(run)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(i: usize, salt: u64) -> f32 {
        let mut h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
        h ^= h >> 29;
        ((h % 2001) as f32 - 1000.0) / 700.0
    }

    fn full(x: &[f32], w: &[f32], b: &[f32], n: usize, relu: bool) -> Vec<f32> {
        let (k, m) = (x.len() / n, b.len());
        let mut y = vec![0f32; n * m];
        for r in 0..n {
            for i in 0..m {
                let z = (0..k).map(|j| x[r * k + j] as f64 * w[i * k + j] as f64).sum::<f64>() + b[i] as f64;
                y[r * m + i] = if relu { z.max(0.0) as f32 } else { z as f32 };
            }
        }
        y
    }

    /// What-if batches of rows of `k` inputs in blocks of `d`: one block changed (a sweep),
    /// one of several blocks per row (the sensitivity panel), two blocks (a map of two
    /// categoricals), rows equal to row 0.
    fn what_if_batches(k: usize, d: usize) -> Vec<Vec<Vec<f32>>> {
        let base: Vec<f32> = (0..k).map(|j| det(j, 3)).collect();
        let set = |row: &mut [f32], block: usize, salt: u64| {
            for (j, v) in row.iter_mut().enumerate().skip(block * d).take(d) {
                *v = det(j, salt);
            }
        };
        let mut batches: Vec<Vec<Vec<f32>>> = vec![vec![], vec![], vec![]];
        for r in 0..30 {
            let mut a = base.clone();
            set(&mut a, 5, 10 + r);
            batches[0].push(a);
            let mut s = base.clone();
            if r % 7 != 3 {
                set(&mut s, r as usize % 6, 100 + r);
            }
            batches[1].push(s);
            let mut t = base.clone();
            set(&mut t, 1, 200 + r % 5);
            if r % 3 != 0 {
                set(&mut t, 4, 300 + r / 5);
            }
            batches[2].push(t);
        }
        batches[1][0] = base;
        batches
    }

    #[test]
    fn matches_the_full_product_on_what_if_batches() {
        let (k, m) = (96, 40);
        let w: Vec<f32> = (0..m * k).map(|i| det(i, 1)).collect();
        let b: Vec<f32> = (0..m).map(|i| det(i, 2)).collect();
        let batches = what_if_batches(k, 8);
        for rows in &batches {
            let n = rows.len();
            let x: Vec<f32> = rows.concat();
            for relu in [false, true] {
                let got = dense_shared_rows(&x, &w, &b, n, relu).expect("a what-if batch");
                let want = full(&x, &w, &b, n, relu);
                let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(err < 2e-5, "off by {err}");
                // Row 0 is the single-row path's bits.
                let mut one = vec![0f32; m];
                dense_row(&w, &b, &x[..k], &mut one, relu);
                assert_eq!(got[..m], one[..]);
            }
        }
    }

    /// Two layers on what-if batches give what the layers give in full: for a group that
    /// repays its M (the sweep, where units switch sign) and for small groups (the rest).
    #[test]
    fn two_layers_match_the_full_layers() {
        let (k, m1, m2) = (96, 40, 24);
        let w1: Vec<f32> = (0..m1 * k).map(|i| det(i, 1) * 0.3).collect();
        let b1: Vec<f32> = (0..m1).map(|i| det(i, 2)).collect();
        let w2: Vec<f32> = (0..m2 * m1).map(|i| det(i, 5) * 0.3).collect();
        let b2: Vec<f32> = (0..m2).map(|i| det(i, 6)).collect();
        let w2t = transpose(&w2, m2, m1);
        let second = Second { w: &w2, wt: &w2t, b: &b2 };
        for (i, rows) in what_if_batches(k, 8).iter().enumerate() {
            let n = rows.len();
            let x: Vec<f32> = rows.concat();
            let h = full(&x, &w1, &b1, n, false);
            let want = full(&full(&x, &w1, &b1, n, true), &w2, &b2, n, true);
            let what_if = WhatIfRows::find(&x, n).expect("a what-if batch");
            let got = two_layers_shared_rows(&what_if, &x, (&w1, &b1), second).expect("wide enough");
            let scale = want.iter().fold(1f32, |a, v| a.max(v.abs()));
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5 * scale, "batch {i}: off by {err} of {scale}");
            if i == 0 {
                let active = h[..m1].iter().filter(|&&v| v > 0.0).count();
                assert!(repays_its_product(n - 1, 8, m1, active), "the sweep takes its M");
                let switched = (1..n).flat_map(|r| (0..m1).map(move |u| (r, u)));
                let switched = switched.filter(|&(r, u)| (h[r * m1 + u] > 0.0) != (h[u] > 0.0)).count();
                assert!(switched > 0 && switched < (n - 1) * m1 / 4, "{switched} units switched");
            }
        }
    }

    #[test]
    fn unrelated_rows_and_narrow_layers_take_the_full_product() {
        let (n, k, m) = (20, 32, 24);
        let x: Vec<f32> = (0..n * k).map(|i| det(i, 4)).collect();
        let w: Vec<f32> = (0..m * k).map(|i| det(i, 5)).collect();
        let b = vec![0.5f32; m];
        assert!(dense_shared_rows(&x, &w, &b, n, true).is_none());
        let same: Vec<f32> = x[..k].repeat(n);
        assert!(dense_shared_rows(&same, &w, &b, n, true).is_some());
        assert!(dense_shared_rows(&same, &w[..4 * k], &b[..4], n, true).is_none(), "4 outputs");
        assert!(dense_shared_rows(&same[..k], &w, &b, 1, true).is_none(), "one row");
    }

    #[test]
    fn runs_of_consecutive_columns() {
        let r: Vec<_> = runs(&[0, 1, 2, 7, 8, 11]).collect();
        assert_eq!(r, [0..3, 3..5, 5..6]);
        assert_eq!(runs(&[4]).collect::<Vec<_>>(), vec![0..1]);
    }
}

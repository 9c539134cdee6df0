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
    let m = b.len();
    if n < 2 || m < MIN_OUTPUTS || x.is_empty() || !x.len().is_multiple_of(n) || w.len() != m * (x.len() / n) {
        return None;
    }
    let k = x.len() / n;
    let groups = changed_columns(x, n, k)?;
    let mut y = vec![0f32; n * m];
    let (row0, rest) = y.split_at_mut(m);
    dense_row(w, b, &x[..k], row0, false);
    let (mut delta, mut term, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    for (cols, rows) in &groups {
        if cols.is_empty() {
            // Rows equal to row 0 take its pre-activation as it is.
            for &r in rows {
                rest[(r - 1) * m..][..m].copy_from_slice(row0);
            }
            continue;
        }
        // The group's changes, (rows, cols) row-major.
        delta.clear();
        for &r in rows {
            delta.extend(cols.iter().map(|&j| x[r * k + j as usize] - x[j as usize]));
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
            // SAFETY: `out` is g x m row-major; the change block is columns start..start+len
            // of the g x s matrix `delta`; W's columns col..col+len read as the len x m
            // matrix W^T (row stride 1, column stride k). All in bounds, nothing overlaps.
            unsafe {
                product(
                    g,
                    m,
                    len,
                    (out.as_mut_ptr(), m, 1),
                    (delta.as_ptr().add(start), s, 1),
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
    if relu {
        for v in &mut y {
            *v = positive(*v);
        }
    }
    Some(y)
}

/// Rows 1.. grouped by the columns in which they differ from row 0 (compared bit for bit),
/// each group's columns ascending; `None` once the changed entries pass the budget.
fn changed_columns(x: &[f32], n: usize, k: usize) -> Option<Vec<(Vec<u32>, Vec<usize>)>> {
    let budget = n * k / MAX_CHANGED_SHARE;
    let (base, mut used) = (&x[..k], 0usize);
    // A what-if batch has a few groups (one per feature it varies), so a linear search
    // finds a row's group.
    let mut groups: Vec<(Vec<u32>, Vec<usize>)> = Vec::new();
    let mut cols = Vec::new();
    for r in 1..n {
        cols.clear();
        let row = &x[r * k..(r + 1) * k];
        for (j, (a, b)) in row.iter().zip(base).enumerate() {
            if a.to_bits() != b.to_bits() {
                cols.push(j as u32);
            }
        }
        used += cols.len();
        // One row past a quarter of its columns already says the batch is not of this kind.
        if used > budget || cols.len() * MAX_CHANGED_SHARE > k {
            return None;
        }
        match groups.iter_mut().find(|(c, _)| *c == cols) {
            Some((_, rows)) => rows.push(r),
            None => groups.push((cols.clone(), vec![r])),
        }
    }
    Some(groups)
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

    /// What-if batches: one block changed (a sweep), one of several blocks per row (the
    /// sensitivity panel), two blocks (a map of two categoricals), rows equal to row 0.
    #[test]
    fn matches_the_full_product_on_what_if_batches() {
        let (k, m, d) = (96, 40, 8);
        let w: Vec<f32> = (0..m * k).map(|i| det(i, 1)).collect();
        let b: Vec<f32> = (0..m).map(|i| det(i, 2)).collect();
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
        batches[1][0] = base.clone();
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

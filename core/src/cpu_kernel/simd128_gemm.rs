//! The matrix product of the fused kernels in wasm32 (simd128): packed panels and a 2 x 16
//! register tile.
//!
//! The `gemm` crate's simd128 kernel keeps a 12 x 4 tile: twelve accumulators, three
//! vectors of the left operand, a broadcast and the product's temporary are seventeen
//! 128-bit registers, more than x86-64's sixteen (V8 keeps one of them as scratch), so the
//! innermost loop cannot stay in registers; the training step spent about 70% of its time
//! there. This tile needs fourteen (eight accumulators, four vectors of the right operand,
//! a broadcast, a temporary), and the loops around it are the classic ones (Goto/BLIS): a
//! block of the right operand packed into micro-panels that stay in L1 while every
//! micro-panel of a block of the left operand passes over them. The left operand is packed
//! only when stored by columns; stored by rows, a tile reads its two rows in place (packing
//! them cost about 5% of a training step for nothing). Under Node.js on a Zen 5 core it
//! runs the dense layers' shapes at about 55 GFLOP/s, where the crate's
//! kernel ran the training step's products at about 43; a 4 x 8 tile was 4% slower, tiles
//! of 10 to 12 accumulators (5 x 8, 3 x 12, 4 x 12) half as fast, and unrolling the inner
//! loop slowed it by a third.
//!
//! wasm has no fused multiply-add without the relaxed-simd proposal, so each step is a
//! multiply and an add, as in the `gemm` crate (`f32x4.relaxed_madd` measured no faster:
//! the loop is bound by the vector units, which two multiplies and two adds a cycle keep as
//! busy as two FMAs). Other targets compile the same code on four-lane arrays (the unit
//! tests check the blocking and the edges natively) but use the `gemm` crate.

use std::cell::RefCell;

/// Rows of the destination per register tile.
const MR: usize = 2;
/// Vectors of four columns per register tile.
const NV: usize = 4;
/// Columns of the destination per register tile.
const NR: usize = 4 * NV;
/// Depth of one packed block (a micro-panel of the right operand is KC x NR, 16 KiB).
const KC: usize = 256;
/// Rows of the left operand per packed block (MC x KC, 128 KiB: in L2).
const MC: usize = 128;
/// Columns of the right operand per packed block (KC x NC, 1 MiB).
const NC: usize = 1024;

#[cfg(target_arch = "wasm32")]
mod lanes {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub(super) struct V(v128);

    #[inline(always)]
    pub(super) fn zero() -> V {
        V(f32x4_splat(0.0))
    }

    /// # Safety
    /// `p` must address one readable f32.
    #[inline(always)]
    pub(super) unsafe fn splat(p: *const f32) -> V {
        // SAFETY: as the caller promises.
        V(unsafe { v128_load32_splat(p.cast()) })
    }

    /// # Safety
    /// `p` must address four readable f32 (no alignment needed).
    #[inline(always)]
    pub(super) unsafe fn load(p: *const f32) -> V {
        // SAFETY: as the caller promises.
        V(unsafe { v128_load(p.cast()) })
    }

    /// # Safety
    /// `p` must address four writable f32.
    #[inline(always)]
    pub(super) unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: as the caller promises.
        unsafe { v128_store(p.cast(), v.0) }
    }

    #[inline(always)]
    pub(super) fn add(a: V, b: V) -> V {
        V(f32x4_add(a.0, b.0))
    }

    /// acc + a b, rounded twice (no FMA in simd128).
    #[inline(always)]
    pub(super) fn mul_add(acc: V, a: V, b: V) -> V {
        V(f32x4_add(acc.0, f32x4_mul(a.0, b.0)))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod lanes {
    #[derive(Clone, Copy)]
    pub(super) struct V([f32; 4]);

    #[inline(always)]
    pub(super) fn zero() -> V {
        V([0.0; 4])
    }

    #[inline(always)]
    pub(super) unsafe fn splat(p: *const f32) -> V {
        // SAFETY: the caller's promise (see the wasm32 version).
        V([unsafe { *p }; 4])
    }

    #[inline(always)]
    pub(super) unsafe fn load(p: *const f32) -> V {
        // SAFETY: as above.
        V(std::array::from_fn(|i| unsafe { *p.add(i) }))
    }

    #[inline(always)]
    pub(super) unsafe fn store(p: *mut f32, v: V) {
        for (i, x) in v.0.into_iter().enumerate() {
            // SAFETY: as above.
            unsafe { *p.add(i) = x };
        }
    }

    #[inline(always)]
    pub(super) fn add(a: V, b: V) -> V {
        V(std::array::from_fn(|i| a.0[i] + b.0[i]))
    }

    #[inline(always)]
    pub(super) fn mul_add(acc: V, a: V, b: V) -> V {
        V(std::array::from_fn(|i| acc.0[i] + a.0[i] * b.0[i]))
    }
}

thread_local! {
    /// The packed blocks, kept between products (a training step runs dozens).
    static PACKED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// dst = a b, with the arguments of [`super::product`]: dst (rows x cols), a (rows x inner),
/// b (inner x cols), each a pointer with (row, column) strides in elements. Writes nothing
/// when `inner` is 0 ([`super::product`] zeroes the destination then).
///
/// # Safety
/// As [`super::product`]: every matrix inside its buffer, `dst` overlapping neither operand.
pub(crate) unsafe fn product(
    rows: usize,
    cols: usize,
    inner: usize,
    dst: (*mut f32, usize, usize),
    a: (*const f32, usize, usize),
    b: (*const f32, usize, usize),
) {
    if rows == 0 || cols == 0 || inner == 0 {
        return;
    }
    // A left operand stored by rows is read in place (its micro-panel is two row streams);
    // one stored by columns (a weight gradient's transposed input) is packed, as reading it
    // in place would walk down a column a power-of-two stride apart.
    let a_in_place = a.2 == 1;
    PACKED.with(|packed| {
        let (pa, pb) = &mut *packed.borrow_mut();
        if !a_in_place {
            pa.resize(MC.min(rows).next_multiple_of(MR) * KC.min(inner), 0.0);
        }
        pb.resize(NC.min(cols).next_multiple_of(NR) * KC.min(inner), 0.0);
        for j0 in (0..cols).step_by(NC) {
            let nc = NC.min(cols - j0);
            for p0 in (0..inner).step_by(KC) {
                let kc = KC.min(inner - p0);
                // SAFETY: the block [p0, p0 + kc) x [j0, j0 + nc) is inside b.
                unsafe { pack_b(pb, kc, nc, (b.0.add(p0 * b.1 + j0 * b.2), b.1, b.2)) };
                for i0 in (0..rows).step_by(MC) {
                    let mc = MC.min(rows - i0);
                    // SAFETY: the block [i0, i0 + mc) x [p0, p0 + kc) is inside a.
                    let block = unsafe { a.0.add(i0 * a.1 + p0 * a.2) };
                    if !a_in_place {
                        // SAFETY: as above.
                        unsafe { pack_a(pa, mc, kc, (block, a.1, a.2)) };
                    }
                    for (jr, panel_b) in pb.chunks_exact(kc * NR).take(nc.div_ceil(NR)).enumerate() {
                        for ir in 0..mc.div_ceil(MR) {
                            let (i, j) = (i0 + ir * MR, j0 + jr * NR);
                            let tile = Tile {
                                // SAFETY: (i, j) is inside dst.
                                at: unsafe { dst.0.add(i * dst.1 + j * dst.2) },
                                row_stride: dst.1,
                                col_stride: dst.2,
                                rows: MR.min(rows - i),
                                cols: NR.min(cols - j),
                                accumulate: p0 > 0,
                            };
                            let panel_a = if a_in_place {
                                // Rows past the block's end repeat its last row (their sums
                                // are not stored), so that no read leaves the operand.
                                // SAFETY: row ir MR of the block is inside a.
                                let first = unsafe { block.add(ir * MR * a.1) };
                                PanelA { first, row_stride: if tile.rows == MR { a.1 } else { 0 }, step: 1 }
                            } else {
                                PanelA { first: pa[ir * kc * MR..].as_ptr(), row_stride: 1, step: MR }
                            };
                            // SAFETY: the panels hold kc steps each; the tile is inside dst.
                            unsafe { micro(kc, &panel_a, panel_b, &tile) };
                        }
                    }
                }
            }
        }
    });
}

/// Packs the mc x kc block at `a`, an operand not stored by rows (typically by columns: row
/// stride 1), into micro-panels of MR rows, step p of a panel being the MR values of column p
/// (rows past mc zero). Each column is read a cache line (GROUP panels) at a time rather
/// than a panel at a time: with a power-of-two column stride the lines of a column share
/// one set of L1, so they would not survive from one panel to the next.
///
/// # Safety
/// The block must be inside its buffer.
unsafe fn pack_a(out: &mut [f32], mc: usize, kc: usize, a: (*const f32, usize, usize)) {
    const GROUP: usize = 16 / MR;
    let panels = mc.div_ceil(MR);
    for g0 in (0..panels).step_by(GROUP) {
        let group = g0..GROUP.min(panels - g0) + g0;
        for p in 0..kc {
            for q in group.clone() {
                for i in 0..MR {
                    let row = q * MR + i;
                    // SAFETY: row < mc and column p < kc of the block.
                    out[(q * kc + p) * MR + i] = if row < mc { unsafe { *a.0.add(row * a.1 + p * a.2) } } else { 0.0 };
                }
            }
        }
    }
}

/// Packs the kc x nc block at `b` into micro-panels of NR columns, step p of a panel being
/// the NR values of row p (columns past nc zero). Reads in the operand's memory order (a
/// transposed operand, a layer's weight, walks down its columns).
///
/// # Safety
/// The block must be inside its buffer.
unsafe fn pack_b(out: &mut [f32], kc: usize, nc: usize, b: (*const f32, usize, usize)) {
    for (jr, panel) in out.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
        let valid = NR.min(nc - jr * NR);
        // SAFETY: column jr NR < nc of the block.
        let first = unsafe { b.0.add(jr * NR * b.2) };
        // SAFETY (all three loops): row p < kc, column j < valid of the block.
        if b.2 == 1 && valid == NR {
            for (p, step) in panel.chunks_exact_mut(NR).enumerate() {
                step.copy_from_slice(unsafe { std::slice::from_raw_parts(first.add(p * b.1), NR) });
            }
        } else if b.1 < b.2 {
            for j in 0..NR {
                for p in 0..kc {
                    panel[p * NR + j] = if j < valid { unsafe { *first.add(p * b.1 + j * b.2) } } else { 0.0 };
                }
            }
        } else {
            for (p, step) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, v) in step.iter_mut().enumerate() {
                    *v = if j < valid { unsafe { *first.add(p * b.1 + j * b.2) } } else { 0.0 };
                }
            }
        }
    }
}

/// Where a register tile goes: up to MR x NR elements of the destination.
struct Tile {
    at: *mut f32,
    row_stride: usize,
    col_stride: usize,
    rows: usize,
    cols: usize,
    /// Add to what is there (a later block of the inner dimension) rather than overwrite.
    accumulate: bool,
}

/// Where a register tile's left operand comes from: row i's value at step p is at
/// `first + i row_stride + p step` (a packed micro-panel, or rows read in place).
struct PanelA {
    first: *const f32,
    row_stride: usize,
    step: usize,
}

/// One MR x NR tile over kc steps of a left operand's rows and a packed right micro-panel.
///
/// # Safety
/// Both panels must hold kc steps; the tile must be inside the destination.
#[inline(always)]
unsafe fn micro(kc: usize, a: &PanelA, b: &[f32], tile: &Tile) {
    // SAFETY: row i of the panel (the caller's promise).
    let rows: [*const f32; MR] = std::array::from_fn(|i| unsafe { a.first.add(i * a.row_stride) });
    let b = b.as_ptr();
    let mut acc = [[lanes::zero(); NV]; MR];
    for p in 0..kc {
        // SAFETY: step p of each panel (the panels hold kc steps).
        let bv: [_; NV] = std::array::from_fn(|h| unsafe { lanes::load(b.add(p * NR + 4 * h)) });
        for (row, &at) in acc.iter_mut().zip(&rows) {
            // SAFETY: as above.
            let x = unsafe { lanes::splat(at.add(p * a.step)) };
            for (r, &bh) in row.iter_mut().zip(&bv) {
                *r = lanes::mul_add(*r, x, bh);
            }
        }
    }
    let whole = tile.rows == MR && tile.cols == NR && tile.col_stride == 1;
    for (i, row) in acc.iter().enumerate().take(tile.rows) {
        // SAFETY: row i < tile.rows of the tile.
        let out = unsafe { tile.at.add(i * tile.row_stride) };
        if whole {
            for (h, &v) in row.iter().enumerate() {
                // SAFETY: four columns from 4 h, inside the whole tile.
                unsafe {
                    let v = if tile.accumulate { lanes::add(lanes::load(out.add(4 * h)), v) } else { v };
                    lanes::store(out.add(4 * h), v);
                }
            }
        } else {
            let mut vals = [0f32; NR];
            for (h, &v) in row.iter().enumerate() {
                // SAFETY: vals holds NV vectors.
                unsafe { lanes::store(vals.as_mut_ptr().add(4 * h), v) };
            }
            for (j, &v) in vals.iter().enumerate().take(tile.cols) {
                // SAFETY: column j < tile.cols of the tile.
                unsafe {
                    let o = out.add(j * tile.col_stride);
                    *o = if tile.accumulate { *o + v } else { v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Products of every kind the kernels ask for (row-major and transposed operands, a
    /// column block of a wider destination), at sizes on and off the tile and block edges,
    /// against a plain triple loop in f64.
    #[test]
    fn matches_a_plain_product_on_and_off_the_edges() {
        let mut seed = 1u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (2, 16, 256), (5, 17, 257), (130, 1030, 300), (17, 3, 600)] {
            for (transposed_a, transposed_b) in [(false, false), (true, false), (false, true), (true, true)] {
                let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
                let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
                // A destination two columns wider than the product, written at column 1.
                let width = n + 2;
                let mut dst = vec![f32::NAN; m * width];
                let a_strides = if transposed_a { (1, m) } else { (k, 1) };
                let b_strides = if transposed_b { (1, k) } else { (n, 1) };
                // SAFETY: every matrix is inside its vector.
                unsafe {
                    product(
                        m,
                        n,
                        k,
                        (dst.as_mut_ptr().add(1), width, 1),
                        (a.as_ptr(), a_strides.0, a_strides.1),
                        (b.as_ptr(), b_strides.0, b_strides.1),
                    )
                };
                for i in 0..m {
                    assert!(dst[i * width].is_nan() && dst[i * width + n + 1].is_nan(), "wrote outside the block");
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|p| {
                                a[i * a_strides.0 + p * a_strides.1] as f64
                                    * b[p * b_strides.0 + j * b_strides.1] as f64
                            })
                            .sum();
                        let got = dst[i * width + 1 + j] as f64;
                        assert!((got - want).abs() < 1e-4, "({m}, {n}, {k}) [{i}, {j}]: {got} vs {want}");
                    }
                }
            }
        }
    }
}

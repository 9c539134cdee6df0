//! Columnar in-memory dataset and batching into candle tensors.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// Compact label storage: one bit per row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitVec {
    words: Vec<u64>,
    len: usize,
}

impl BitVec {
    pub fn with_capacity(bits: usize) -> Self {
        Self { words: Vec::with_capacity(bits.div_ceil(64)), len: 0 }
    }

    pub fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        if bit {
            self.words[self.len / 64] |= 1 << (self.len % 64);
        }
        self.len += 1;
    }

    /// Appends the bits of `other`.
    pub fn extend_from(&mut self, other: &BitVec) {
        for i in 0..other.len {
            self.push(other.get(i));
        }
    }

    pub fn get(&self, i: usize) -> bool {
        i < self.len && (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Encoded rows: categorical ids (0 = OOV) and normalised numerics, row-major, plus labels.
/// Memory per row: 4 bytes per categorical field, 4 per numeric, 2 bits of labels, and 4 for
/// the optional group id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    pub n_cat: usize,
    pub n_num: usize,
    pub cat: Vec<u32>,
    pub num: Vec<f32>,
    pub click: BitVec,
    pub conversion: BitVec,
    /// Group key per row (an index into the distinct values seen), for GAUC.
    pub group: Option<Vec<u32>>,
}

/// A batch as the model consumes it.
#[derive(Debug, Clone)]
pub struct Batch {
    /// (N, F) u32 ids.
    pub cat: Tensor,
    /// (N, D) f32 normalised numerics.
    pub num: Tensor,
    /// (N,) f32 click labels.
    pub click: Tensor,
    /// (N,) f32 conversion labels (1 only where click is 1).
    pub conversion: Tensor,
}

impl Dataset {
    pub fn new(n_cat: usize, n_num: usize) -> Self {
        Self { n_cat, n_num, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.click.len()
    }

    pub fn is_empty(&self) -> bool {
        self.click.is_empty()
    }

    /// Appends one encoded row.
    pub fn push(&mut self, cat: &[u32], num: &[f32], click: bool, conversion: bool) {
        debug_assert_eq!(cat.len(), self.n_cat);
        debug_assert_eq!(num.len(), self.n_num);
        self.cat.extend_from_slice(cat);
        self.num.extend_from_slice(num);
        self.click.push(click);
        self.conversion.push(conversion);
    }

    /// Appends the rows of `other` (same shape), without their group ids.
    pub(crate) fn append_rows(&mut self, other: &Dataset) {
        self.cat.extend_from_slice(&other.cat);
        self.num.extend_from_slice(&other.num);
        self.click.extend_from(&other.click);
        self.conversion.extend_from(&other.conversion);
    }

    pub fn cat_row(&self, i: usize) -> &[u32] {
        &self.cat[i * self.n_cat..(i + 1) * self.n_cat]
    }

    pub fn num_row(&self, i: usize) -> &[f32] {
        &self.num[i * self.n_num..(i + 1) * self.n_num]
    }

    pub fn clicks(&self) -> usize {
        self.click.count_ones()
    }

    pub fn conversions(&self) -> usize {
        self.conversion.count_ones()
    }

    /// Builds the batch of the given rows, gathering into one buffer per tensor.
    pub fn batch(&self, rows: &[usize], device: &Device) -> Result<Batch> {
        let n = rows.len();
        let mut cat = Vec::with_capacity(n * self.n_cat);
        let mut num = Vec::with_capacity(n * self.n_num);
        let mut click = Vec::with_capacity(n);
        let mut conversion = Vec::with_capacity(n);
        for &r in rows {
            cat.extend_from_slice(self.cat_row(r));
            num.extend_from_slice(self.num_row(r));
            click.push(if self.click.get(r) { 1f32 } else { 0. });
            conversion.push(if self.conversion.get(r) { 1f32 } else { 0. });
        }
        Ok(Batch {
            cat: Tensor::from_vec(cat, (n, self.n_cat), device)?,
            num: Tensor::from_vec(num, (n, self.n_num), device)?,
            click: Tensor::from_vec(click, n, device)?,
            conversion: Tensor::from_vec(conversion, n, device)?,
        })
    }

    /// Batches of consecutive rows `[start, start + size)`, for evaluation.
    pub fn range_batch(&self, start: usize, size: usize, device: &Device) -> Result<Batch> {
        let end = (start + size).min(self.len());
        let rows: Vec<usize> = (start..end).collect();
        self.batch(&rows, device)
    }
}

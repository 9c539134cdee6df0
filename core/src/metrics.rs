//! Evaluation metrics: exact AUC (ties count half), logloss, and group AUC.

/// Exact ROC AUC: the probability that a random positive scores above a random negative,
/// ties counted as one half. `None` when either class is absent.
///
/// Sorting then summing tie-averaged ranks (Mann-Whitney U) is O(n log n) and exact.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len(), "auc: scores and labels differ in length");
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            j += 1;
        }
        // Ranks i+1..=j share their average.
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        let pos_in_tie = idx[i..j].iter().filter(|&&k| labels[k]).count();
        rank_sum_pos += avg_rank * pos_in_tie as f64;
        i = j;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// Mean binary cross-entropy of probabilities, clamped away from 0 and 1 as evaluation
/// tools usually do. `None` for empty input.
pub fn logloss(probs: &[f64], labels: &[bool]) -> Option<f64> {
    assert_eq!(probs.len(), labels.len(), "logloss: probs and labels differ in length");
    if probs.is_empty() {
        return None;
    }
    const EPS: f64 = 1e-7;
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Some(total / probs.len() as f64)
}

/// Group AUC: the AUC within each group that has both classes, averaged with weights equal
/// to the group's size (the usual GAUC definition). `None` when no group has both classes.
pub fn group_auc(scores: &[f64], labels: &[bool], groups: &[u32]) -> Option<f64> {
    assert_eq!(scores.len(), groups.len(), "group_auc: scores and groups differ in length");
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&i| groups[i]);
    let (mut weighted, mut weight) = (0.0, 0.0);
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && groups[order[end]] == groups[order[start]] {
            end += 1;
        }
        let s: Vec<f64> = order[start..end].iter().map(|&i| scores[i]).collect();
        let l: Vec<bool> = order[start..end].iter().map(|&i| labels[i]).collect();
        if let Some(a) = auc(&s, &l) {
            weighted += a * (end - start) as f64;
            weight += (end - start) as f64;
        }
        start = end;
    }
    (weight > 0.0).then(|| weighted / weight)
}

/// Quantile by linear interpolation between order statistics (numpy's default), `q` in [0, 1].
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Mean and sample standard deviation (0 for a single value), e.g. of a metric over seeds.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// Spearman rank correlation (Pearson correlation of tie-averaged ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "spearman: inputs differ in length");
    if a.len() < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_unstable_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut r = vec![0.0; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && xs[idx[j]] == xs[idx[i]] {
            j += 1;
        }
        let avg = (i + j - 1) as f64 / 2.0;
        for &k in &idx[i..j] {
            r[k] = avg;
        }
        i = j;
    }
    r
}

/// Summary of a distribution (used for tau): mean and the 5th, 50th and 95th percentiles.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Distribution {
    pub mean: f64,
    pub p5: f64,
    pub p50: f64,
    pub p95: f64,
}

impl Distribution {
    pub fn of(values: &[f64]) -> Self {
        let mut s = values.to_vec();
        s.sort_unstable_by(f64::total_cmp);
        let mean = if s.is_empty() { f64::NAN } else { s.iter().sum::<f64>() / s.len() as f64 };
        Self { mean, p5: quantile(&s, 0.05), p50: quantile(&s, 0.5), p95: quantile(&s, 0.95) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(m, 3.0);
        assert!((s - (14.0f64 / 3.0).sqrt()).abs() < 1e-12, "{s}");
    }
    use crate::rng::Rng;

    fn brute_auc(s: &[f64], l: &[bool]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..s.len() {
            for j in 0..s.len() {
                if l[i] && !l[j] {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    #[test]
    fn auc_matches_pairwise_count_with_ties() {
        let mut rng = Rng::new(11);
        for trial in 0..50 {
            let n = 2 + trial * 7;
            // Few distinct scores so that ties are common.
            let s: Vec<f64> = (0..n).map(|_| rng.below(6) as f64 / 5.0).collect();
            let l: Vec<bool> = (0..n).map(|i| i == 0 || (i != 1 && rng.bernoulli(0.3))).collect();
            let got = auc(&s, &l).unwrap();
            let want = brute_auc(&s, &l);
            assert!((got - want).abs() < 1e-12, "n={n}: {got} vs {want}");
        }
    }

    #[test]
    fn auc_edge_cases() {
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auc(&[0.1, 0.9], &[false, true]), Some(1.0));
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auc(&[0.9, 0.1], &[false, true]), Some(0.0));
    }

    #[test]
    fn logloss_known_value() {
        // -(ln 0.8 + ln 0.6) / 2
        let got = logloss(&[0.8, 0.4], &[true, false]).unwrap();
        assert!((got - 0.366_984_587_540_100_2).abs() < 1e-9, "{got}");
        assert!(logloss(&[0.0], &[true]).unwrap().is_finite());
    }

    #[test]
    fn group_auc_weights_by_size() {
        // Group 0: perfect (3 rows); group 1: inverted (2 rows); group 2: one class, skipped.
        let s = [0.9, 0.1, 0.2, 0.1, 0.9, 0.5];
        let l = [true, false, false, true, false, true];
        let g = [0, 0, 0, 1, 1, 2];
        let got = group_auc(&s, &l, &g).unwrap();
        assert!((got - (3.0 * 1.0 + 2.0 * 0.0) / 5.0).abs() < 1e-12);
    }

    #[test]
    fn spearman_and_quantiles() {
        assert!((spearman(&[1., 2., 3., 4.], &[10., 20., 30., 40.]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&[1., 2., 3., 4.], &[4., 3., 2., 1.]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&[1., 1.], &[1., 2.]), None);
        let d = Distribution::of(&[1., 2., 3., 4., 5.]);
        assert_eq!((d.mean, d.p50), (3.0, 3.0));
        assert!((d.p5 - 1.2).abs() < 1e-12 && (d.p95 - 4.8).abs() < 1e-12);
    }
}

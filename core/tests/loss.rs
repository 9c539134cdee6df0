//! InfoNCE with per-instance temperature: values against hand-worked cases and gradients
//! (through both representations and through tau) against central finite differences.

use adaftr_core::config::{LossConfig, Negatives, Similarity};
use adaftr_core::loss::{contrastive, scalar};
use adaftr_core::rng::Rng;
use candle_core::{DType, Device, Tensor, Var};

fn t2(rows: &[[f64; 2]]) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), 2), &Device::Cpu).unwrap()
}

fn cfg(symmetric: bool) -> LossConfig {
    LossConfig { symmetric, ..LossConfig::default() }
}

#[test]
fn info_nce_hand_computed() {
    // Unit vectors, so cosine = dot: S = [[0.8, 0.0], [0.96, 0.8]], tau = [0.5, 0.25].
    // Produced by:
    //   lse = lambda xs: max(xs) + log(sum(exp(x - max(xs)) for x in xs))
    //   rows = (lse([1.6, 0]) - 1.6 + lse([3.84, 3.2]) - 3.2) / 2   # 0.6236986255554365
    //   cols = (lse([1.6, 1.92]) - 1.6 + lse([0, 3.2]) - 3.2) / 2   # 0.4529231351712528
    let hc = t2(&[[1.0, 0.0], [0.6, 0.8]]);
    let hv = t2(&[[0.8, 0.6], [0.0, 1.0]]);
    let tau = Tensor::new(&[0.5f64, 0.25], &Device::Cpu).unwrap();
    let mut rng = Rng::new(0);
    let rows = scalar(&contrastive(&hc, &hv, &tau, &cfg(false), &mut rng).unwrap()).unwrap();
    assert!((rows - 0.6236986255554365).abs() < 1e-12, "{rows}");
    let sym = scalar(&contrastive(&hc, &hv, &tau, &cfg(true), &mut rng).unwrap()).unwrap();
    assert!((sym - (0.6236986255554365 + 0.4529231351712528) / 2.0).abs() < 1e-12, "{sym}");
    // Cosine ignores the scale of the representations; dot does not.
    let hc3 = (&hc * 3.0).unwrap();
    let again = scalar(&contrastive(&hc3, &hv, &tau, &cfg(false), &mut rng).unwrap()).unwrap();
    assert!((again - rows).abs() < 1e-12);
    let dot = LossConfig { similarity: Similarity::Dot, symmetric: false, ..LossConfig::default() };
    let scaled = scalar(&contrastive(&hc3, &hv, &tau, &dot, &mut rng).unwrap()).unwrap();
    assert!((scaled - rows).abs() > 0.1);
}

#[test]
fn info_nce_with_one_negative_each_equals_in_batch_for_two_rows() {
    // With N = 2 the only possible sampled negative is the other row.
    let hc = t2(&[[1.0, 0.2], [0.3, 0.8]]);
    let hv = t2(&[[0.5, 0.6], [0.1, 1.0]]);
    let tau = Tensor::new(&[0.3f64, 0.7], &Device::Cpu).unwrap();
    let mut rng = Rng::new(1);
    let sampled = LossConfig { negatives: Negatives::Sampled, sampled_negatives: 1, ..LossConfig::default() };
    let a = scalar(&contrastive(&hc, &hv, &tau, &sampled, &mut rng).unwrap()).unwrap();
    let b = scalar(&contrastive(&hc, &hv, &tau, &cfg(true), &mut rng).unwrap()).unwrap();
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

fn random(shape: (usize, usize), rng: &mut Rng) -> Vec<f64> {
    (0..shape.0 * shape.1).map(|_| rng.normal()).collect()
}

/// Checks d loss / d (hc, hv, tau) from candle's backward against central differences.
fn check_gradients(c: &LossConfig) {
    let (n, k) = (5, 3);
    let mut rng = Rng::new(9);
    let dev = Device::Cpu;
    let hc0 = random((n, k), &mut rng);
    let hv0 = random((n, k), &mut rng);
    let tau0: Vec<f64> = (0..n).map(|_| 0.1 + 0.9 * rng.next_f64()).collect();
    let loss = |hc: &[f64], hv: &[f64], tau: &[f64]| -> f64 {
        let hc = Tensor::from_slice(hc, (n, k), &dev).unwrap();
        let hv = Tensor::from_slice(hv, (n, k), &dev).unwrap();
        let tau = Tensor::from_slice(tau, n, &dev).unwrap();
        scalar(&contrastive(&hc, &hv, &tau, c, &mut Rng::new(4)).unwrap()).unwrap()
    };
    let vhc = Var::from_slice(&hc0, (n, k), &dev).unwrap();
    let vhv = Var::from_slice(&hv0, (n, k), &dev).unwrap();
    let vtau = Var::from_slice(&tau0, n, &dev).unwrap();
    let l = contrastive(vhc.as_tensor(), vhv.as_tensor(), vtau.as_tensor(), c, &mut Rng::new(4)).unwrap();
    let grads = l.backward().unwrap();
    let g = |v: &Var| {
        grads.get(v.as_tensor()).unwrap().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
    };
    let (ghc, ghv, gtau) = (g(&vhc), g(&vhv), g(&vtau));
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    for which in 0..3 {
        let base = [&hc0, &hv0, &tau0][which];
        let analytic = [&ghc, &ghv, &gtau][which];
        for i in 0..base.len() {
            let mut plus = base.clone();
            let mut minus = base.clone();
            plus[i] += eps;
            minus[i] -= eps;
            let args = |v: &Vec<f64>| match which {
                0 => loss(v, &hv0, &tau0),
                1 => loss(&hc0, v, &tau0),
                _ => loss(&hc0, &hv0, v),
            };
            let numeric = (args(&plus) - args(&minus)) / (2.0 * eps);
            let err = (numeric - analytic[i]).abs();
            worst = worst.max(err);
            assert!(
                err < 1e-6 * (1.0 + numeric.abs()),
                "{c:?} input {which} elem {i}: numeric {numeric} analytic {}",
                analytic[i]
            );
        }
    }
    // d/dtau must be non-trivial, or the relatedness network could never learn.
    assert!(gtau.iter().any(|g| g.abs() > 1e-3), "{gtau:?}");
    eprintln!("{c:?}: worst gradient error {worst:.2e}");
}

#[test]
fn info_nce_gradients_match_finite_differences() {
    check_gradients(&cfg(true));
    check_gradients(&cfg(false));
    check_gradients(&LossConfig { similarity: Similarity::Dot, ..LossConfig::default() });
    check_gradients(&LossConfig { negatives: Negatives::Sampled, sampled_negatives: 3, ..LossConfig::default() });
}

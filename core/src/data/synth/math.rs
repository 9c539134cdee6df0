//! The generator's arithmetic. Every transcendental function comes from `libm` (a pure-Rust
//! port of musl's), not the platform's math library, so that a world and its data are the
//! same bytes natively and in wasm32.

/// Latent dimensions of the user and item factor vectors.
pub(super) const K: usize = 4;
pub(super) type Vec4 = [f64; K];

#[inline]
pub(super) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + libm::exp(-z))
}

#[inline]
pub(super) fn logit(p: f64) -> f64 {
    libm::log(p / (1.0 - p))
}

#[inline]
pub(super) fn cos_turn(x: f64) -> f64 {
    libm::cos(std::f64::consts::TAU * x)
}

#[inline]
pub(super) fn sin_turn(x: f64) -> f64 {
    libm::sin(std::f64::consts::TAU * x)
}

/// Mean and (population) standard deviation; a degenerate spread counts as 1.
pub(super) fn mean_sd(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count().max(1) as f64;
    let mean = xs.clone().sum::<f64>() / n;
    let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    (mean, if sd > 1e-12 { sd } else { 1.0 })
}

/// The root of an increasing function on [lo, hi] by bisection.
pub(super) fn bisect(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

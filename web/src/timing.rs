//! Timing inference with a coarse clock. Browsers coarsen `performance.now()` (Chromium to
//! 100 µs), so one call of a fast prediction reads as 0 or as one tick: the mean is taken
//! over as many calls as fit a time budget, which bounds the error by one tick divided by
//! the number of calls.

/// How long a measurement runs (milliseconds).
pub const BUDGET_MS: f64 = 20.0;
/// Calls at most, whatever the clock says (a clock that does not move must not hang).
pub const MAX_CALLS: usize = 100_000;

/// A mean duration and how many calls it is the mean of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub mean_ms: f64,
    pub calls: usize,
}

/// Calls `f` until `budget_ms` have passed on `now` (at least once, at most [`MAX_CALLS`]
/// times) and returns the mean time per call; the first error stops the measurement.
pub fn mean_duration<E>(
    budget_ms: f64,
    now: impl Fn() -> f64,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<Measured, E> {
    let t0 = now();
    let mut calls = 0;
    loop {
        f()?;
        calls += 1;
        let elapsed = now() - t0;
        if elapsed >= budget_ms || calls >= MAX_CALLS {
            return Ok(Measured { mean_ms: elapsed / calls as f64, calls });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_coarse_clock_still_gives_the_real_mean() {
        // A 7 µs call timed with a clock that only shows multiples of 100 µs.
        let t = Cell::new(0.0f64);
        let coarse = || (t.get() / 0.1).floor() * 0.1;
        let m = mean_duration(BUDGET_MS, coarse, || {
            t.set(t.get() + 0.007);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert!((m.mean_ms - 0.007).abs() < 0.007 * 0.01, "{m:?}");
        assert!(m.calls >= 2800, "{m:?}");
    }

    #[test]
    fn a_stuck_clock_or_an_error_ends_the_measurement() {
        let m = mean_duration(BUDGET_MS, || 5.0, || Ok::<_, ()>(())).unwrap();
        assert_eq!(m, Measured { mean_ms: 0.0, calls: MAX_CALLS });
        let n = Cell::new(0);
        let e = mean_duration(
            BUDGET_MS,
            || 0.0,
            || {
                n.set(n.get() + 1);
                if n.get() == 3 {
                    Err("broke")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!((e, n.get()), (Err("broke"), 3));
    }
}

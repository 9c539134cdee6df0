//! Training speed, as `adaftr train` prints it and the page's Train panel shows it.

/// Steps per second over an epoch's steps after its first: the first step's warm-up (cold
/// caches natively; in the browser, code V8 has not optimised yet) and the validation
/// between epochs are left out, so that the speeds of the two targets compare. Times are
/// milliseconds on any clock that does not go back.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Throughput {
    /// Steps and milliseconds of the epoch's finished stretches (a pause ends one).
    done: (usize, f64),
    /// The current stretch: when its first step ended, when its latest step ended, and the
    /// steps since its first.
    stretch: Option<(f64, f64, usize)>,
}

impl Throughput {
    /// A step ended at `now_ms`.
    pub fn step(&mut self, now_ms: f64) {
        match &mut self.stretch {
            None => self.stretch = Some((now_ms, now_ms, 0)),
            Some((_, last, steps)) => (*last, *steps) = (now_ms, *steps + 1),
        }
    }

    /// Training stops for a while (Pause): the time until the next step is not counted,
    /// and that step starts a new stretch.
    pub fn pause(&mut self) {
        if let Some((first, last, steps)) = self.stretch.take() {
            self.done = (self.done.0 + steps, self.done.1 + (last - first));
        }
    }

    /// The epoch ended: the next step starts the next epoch's count.
    pub fn end_epoch(&mut self) {
        *self = Self::default();
    }

    /// Steps per second of this epoch so far; `None` before its second step.
    pub fn steps_per_second(&self) -> Option<f64> {
        let (steps, ms) = match self.stretch {
            Some((first, last, n)) => (self.done.0 + n, self.done.1 + (last - first)),
            None => self.done,
        };
        (steps > 0 && ms > 0.0).then(|| steps as f64 * 1e3 / ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_steps_after_the_first_and_leaves_pauses_and_epochs_out() {
        let mut t = Throughput::default();
        // A slow first step (warm-up), then a step every 100 ms.
        t.step(900.0);
        assert_eq!(t.steps_per_second(), None);
        t.step(1_000.0);
        t.step(1_100.0);
        assert_eq!(t.steps_per_second(), Some(10.0));
        // Ten seconds paused, then a step every 50 ms: 2 + 2 steps over 200 + 100 ms.
        t.pause();
        t.step(11_100.0);
        assert_eq!(t.steps_per_second(), Some(10.0));
        t.step(11_150.0);
        t.step(11_200.0);
        assert!((t.steps_per_second().unwrap() - 4.0 / 0.3).abs() < 1e-9);
        t.end_epoch();
        assert_eq!(t.steps_per_second(), None);
        // Several steps reported at the same moment (the page gets them a slice at a time).
        for now in [20_000.0, 20_500.0, 20_500.0, 21_000.0, 21_000.0] {
            t.step(now);
        }
        assert_eq!(t.steps_per_second(), Some(4.0));
    }
}

//! An edit's frames, counted: the bookkeeping behind the page's edit timing
//! (`ui/paint.rs` asks the browser for the times and says when renders commit and frames
//! are painted; this decides what each frame counts towards). See that module's note for
//! the three readings.

/// The last edit's times (ms).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct EditTimes {
    /// Dispatch to the first frame painted with everything in view that the edit changed.
    pub to_paint: f64,
    /// The edit's own frame: dispatch to the DOM committed, plus any follow-up's render
    /// that came before the frame, plus that frame's rendering.
    pub work: f64,
    /// The longest later frame that rendered the edit's follow-ups: their renders' time,
    /// from the start of each one's task to its DOM committed, plus the frame's rendering.
    pub late: Option<f64>,
}

/// Which frame a committed render waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The edit's own frame (its first render).
    Own,
    /// A frame with a follow-up's render: the panel worker's batches, the inputs off the
    /// screen.
    Later,
}

/// One edit being timed, from its dispatch at `t0` (ms on the page's clock).
#[derive(Debug, Default)]
pub struct EditRun {
    t0: f64,
    /// When the edit's first render was committed, and its last.
    first_commit: Option<f64>,
    committed: Option<f64>,
    work: Option<f64>,
    /// Whether the frame that shows everything in view has been asked for.
    view_asked: bool,
    to_paint: Option<f64>,
    /// Follow-up renders not yet counted into a painted frame: when each was committed,
    /// and its time.
    unpainted: Vec<(f64, f64)>,
    late: Option<f64>,
}

impl EditRun {
    pub fn new(t0: f64) -> Self {
        Self { t0, ..Self::default() }
    }

    /// A render of the edit was committed at `at`; the page last began a follow-up's task
    /// at `follow_up_began`. Returns the frame to time for it: the first render's, or a
    /// follow-up's (a render from a task the page began after the last commit, not, say,
    /// from a timer of its own); `None` for any other render.
    pub fn committed(&mut self, at: f64, follow_up_began: f64) -> Option<Frame> {
        match self.committed.replace(at) {
            None => {
                self.first_commit = Some(at);
                Some(Frame::Own)
            }
            Some(before) if follow_up_began > before => {
                self.unpainted.push((at, at - follow_up_began));
                Some(Frame::Later)
            }
            Some(_) => None,
        }
    }

    /// The edit's own frame began at `frame_start` and was painted at `painted`. Follow-ups
    /// committed before it began (the worker answered while the edit's render ran long)
    /// were painted in it too: they count towards its work.
    pub fn own_frame(&mut self, frame_start: f64, painted: f64) {
        let follow_ups = self.painted_in(frame_start).unwrap_or(0.0);
        let first_commit = self.first_commit.unwrap_or(frame_start);
        self.work = Some((first_commit - self.t0) + follow_ups + (painted - frame_start));
    }

    /// A frame asked for by a follow-up was painted. Follow-ups committed before one frame
    /// share it: the first of their frames to be reported counts them all; for the others,
    /// or for a frame that was the edit's own, nothing is left.
    pub fn later_frame(&mut self, frame_start: f64, painted: f64) {
        if let Some(follow_ups) = self.painted_in(frame_start) {
            let frame = follow_ups + (painted - frame_start);
            self.late = Some(self.late.map_or(frame, |l| l.max(frame)));
        }
    }

    /// Whether to ask for the frame that shows everything in view (once, at the first
    /// render with everything in view current).
    pub fn ask_view(&mut self) -> bool {
        !std::mem::replace(&mut self.view_asked, true)
    }

    pub fn view_painted(&mut self, painted: f64) {
        self.to_paint = Some(painted - self.t0);
    }

    /// The edit's times, once everything it changed has been painted at `painted` (frames
    /// not timed count until then).
    pub fn times(&self, painted: f64) -> EditTimes {
        EditTimes {
            to_paint: self.to_paint.unwrap_or(painted - self.t0),
            work: self.work.unwrap_or(painted - self.t0),
            late: self.late,
        }
    }

    /// The time of the follow-up renders committed before a frame began (so painted in
    /// it), taken out of `unpainted`; `None` if there were none.
    fn painted_in(&mut self, frame_start: f64) -> Option<f64> {
        let (in_frame, later): (Vec<_>, Vec<_>) = self.unpainted.iter().partition(|(at, _)| *at < frame_start);
        self.unpainted = later;
        (!in_frame.is_empty()).then(|| in_frame.iter().map(|(_, ms)| ms).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_and_its_follow_ups_in_later_frames() {
        let mut r = EditRun::new(100.0);
        assert_eq!(r.committed(105.0, 0.0), Some(Frame::Own));
        r.own_frame(108.0, 111.0);
        // The worker's two panels, answered in one frame: both renders count in it.
        assert_eq!(r.committed(114.0, 113.0), Some(Frame::Later));
        assert_eq!(r.committed(116.0, 114.5), Some(Frame::Later));
        r.later_frame(124.0, 127.0);
        r.later_frame(124.0, 127.0);
        // The inputs off the screen, in a frame of their own.
        assert_eq!(r.committed(130.0, 129.0), Some(Frame::Later));
        r.later_frame(140.0, 142.0);
        // A render of the page's own (a timer), not a follow-up.
        assert_eq!(r.committed(145.0, 129.0), None);
        assert!(r.ask_view());
        assert!(!r.ask_view(), "asked once");
        r.view_painted(127.0);
        let t = r.times(142.0);
        assert_eq!((t.work, t.to_paint), (5.0 + 3.0, 27.0));
        assert_eq!(t.late, Some(1.0 + 1.5 + 3.0), "the longer later frame");
    }

    #[test]
    fn follow_ups_before_the_edits_frame_count_in_it() {
        let mut r = EditRun::new(0.0);
        assert_eq!(r.committed(7.0, 0.0), Some(Frame::Own));
        // The edit's render ran long: the worker's batch came back before its frame.
        assert_eq!(r.committed(9.0, 8.0), Some(Frame::Later));
        r.own_frame(10.0, 15.0);
        r.later_frame(10.0, 15.0);
        let t = r.times(15.0);
        assert_eq!(t.work, 7.0 + 1.0 + 5.0);
        assert_eq!(t.late, None, "no later frame");
    }

    #[test]
    fn a_follow_up_after_a_frame_began_waits_for_the_next() {
        let mut r = EditRun::new(0.0);
        r.committed(4.0, 0.0);
        // The worker's answer rendered between the frame's start and its paint's end.
        r.committed(12.0, 11.0);
        r.own_frame(10.0, 11.0);
        assert_eq!(r.times(11.0).work, 4.0 + 1.0);
        r.later_frame(10.0, 11.0);
        assert_eq!(r.times(11.0).late, None, "not that frame's");
        r.later_frame(26.0, 29.0);
        assert_eq!(r.times(29.0).late, Some(1.0 + 3.0));
    }

    #[test]
    fn frames_not_timed_count_until_everything_is_painted() {
        let mut r = EditRun::new(50.0);
        r.committed(52.0, 0.0);
        let t = r.times(70.0);
        assert_eq!((t.work, t.to_paint, t.late), (20.0, 20.0, None));
    }
}

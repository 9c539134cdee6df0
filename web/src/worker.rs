//! The training worker (trunk builds it as a Web Worker beside the app): it reads the
//! dropped file in chunks, runs a [`Session`](adaftr_web::training::Session) a slice of
//! steps at a time, and posts reports; between slices it yields, so that Pause, Resume and
//! Stop from the page are read. All training is `adaftr_web::training`, i.e. core's.
//!
//! Messages (JS arrays; the first element names the message):
//! - page to worker: `["start", request JSON, File, bundle bytes or null]`, `["pause"]`,
//!   `["resume"]`, `["stop"]`;
//! - worker to page: `["ready"]` once it listens, `["read", bytes so far]`, `["reports",
//!   JSON array of Report]`, `["memory", the worker's wasm memory in bytes]`, `["done",
//!   Report JSON, bundle bytes]`.

#[cfg(target_arch = "wasm32")]
fn main() {
    worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("adaftr-train-worker runs in the browser, started by the demo's Train panel");
    std::process::exit(2);
}

#[cfg(target_arch = "wasm32")]
mod worker {
    use std::cell::RefCell;
    use std::io::Read;

    use adaftr_core::bundle;
    use adaftr_web::in_worker::{self, now, scope};
    use adaftr_web::training::{Report, Session, TrainRequest};
    use candle_core::Device;
    use js_sys::{Array, Uint8Array};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{File, FileReaderSync, MessageEvent};

    /// Milliseconds of training between two looks at the message queue: short enough that
    /// Pause and Stop answer at once, long enough that yielding costs nothing measurable.
    const SLICE_MS: f64 = 50.0;

    #[derive(Default)]
    struct Run {
        session: Option<Session>,
        paused: bool,
        stop: bool,
        /// Steps per slice, adapted to the measured step time.
        steps: usize,
    }

    thread_local! {
        static RUN: RefCell<Run> = RefCell::new(Run::default());
    }

    fn post(items: &[JsValue]) {
        in_worker::post(items, &Array::new());
    }

    fn post_reports(reports: &[Report]) {
        if let Ok(json) = serde_json::to_string(reports) {
            post(&["reports".into(), json.into()]);
        }
    }

    /// The worker's wasm memory (which only grows, so this is also its peak so far).
    fn post_memory() {
        let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
        let bytes = memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length();
        post(&["memory".into(), (bytes as f64).into()]);
    }

    fn fail(message: String) {
        RUN.with(|r| *r.borrow_mut() = Run::default());
        post_reports(&[Report::Failed { message }]);
    }

    /// The dropped file, read a chunk at a time (`FileReaderSync` exists in workers only),
    /// reporting the bytes read.
    struct Chunks {
        file: File,
        at: f64,
        reader: FileReaderSync,
        last_post: f64,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let size = self.file.size();
            if self.at >= size || buf.is_empty() {
                return Ok(0);
            }
            let end = (self.at + buf.len() as f64).min(size);
            let blob = self.file.slice_with_f64_and_f64(self.at, end).map_err(io_err)?;
            let bytes = Uint8Array::new(&self.reader.read_as_array_buffer(&blob).map_err(io_err)?.into());
            let n = bytes.length() as usize;
            bytes.copy_to(&mut buf[..n]);
            self.at += n as f64;
            if self.at - self.last_post >= 4.0 * 1024.0 * 1024.0 || self.at >= size {
                self.last_post = self.at;
                post(&["read".into(), self.at.into()]);
            }
            Ok(n)
        }
    }

    fn io_err(e: JsValue) -> std::io::Error {
        std::io::Error::other(format!("{e:?}"))
    }

    fn start_run(request: JsValue, file: JsValue, base: JsValue) -> Result<(), String> {
        let json = request.as_string().ok_or("a start message without a request")?;
        let req: TrainRequest = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        let file: File = file.dyn_into().map_err(|_| "a start message without a file".to_string())?;
        let base = match base.dyn_into::<Uint8Array>() {
            Ok(bytes) => Some(bundle::load(&bytes.to_vec(), &Device::Cpu).map_err(|e| e.to_string())?),
            Err(_) => None,
        };
        let reader = FileReaderSync::new().map_err(|e| format!("{e:?}"))?;
        // 8 MiB reads: few crossings into JS, little memory beyond what is kept.
        let chunks = std::io::BufReader::with_capacity(8 << 20, Chunks { file, at: 0.0, reader, last_post: 0.0 });
        let (session, ready) = Session::start(&req, chunks, base.as_ref())?;
        RUN.with(|r| *r.borrow_mut() = Run { session: Some(session), paused: false, stop: false, steps: 1 });
        post_reports(&[ready]);
        post_memory();
        schedule();
        Ok(())
    }

    fn schedule() {
        let tick = Closure::once_into_js(tick);
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(tick.unchecked_ref(), 0);
    }

    /// One slice of training, then yield (or finish).
    fn tick() {
        let outcome = RUN.with(|r| {
            let mut run = r.borrow_mut();
            let run = &mut *run;
            let session = run.session.as_mut()?;
            if run.stop {
                return Some(session.stop().map(|()| (Vec::new(), true, true)));
            }
            if run.paused {
                return None;
            }
            let t0 = now();
            let result = session.run(run.steps);
            let ms = now() - t0;
            // Aim at SLICE_MS per slice (a validation pass makes one slice longer).
            let per_step = ms / run.steps.max(1) as f64;
            if per_step > 0.0 {
                run.steps = ((SLICE_MS / per_step) as usize).clamp(1, 1_000);
            }
            Some(result.map(|(reports, done)| (reports, done, false)))
        });
        match outcome {
            None => {}
            Some(Err(e)) => fail(e),
            Some(Ok((reports, done, stopped))) => {
                post_reports(&reports);
                post_memory();
                if done {
                    finish(stopped);
                } else {
                    schedule();
                }
            }
        }
    }

    fn finish(stopped: bool) {
        let Some(session) = RUN.with(|r| r.borrow_mut().session.take()) else { return };
        match session.bundle() {
            Ok(bytes) => {
                let report = Report::Done { summary: session.summary(), stopped };
                let json = serde_json::to_string(&report).unwrap_or_default();
                post(&["done".into(), json.into(), Uint8Array::from(&bytes[..]).into()]);
            }
            Err(e) => fail(e),
        }
        RUN.with(|r| *r.borrow_mut() = Run::default());
    }

    fn on_message(e: MessageEvent) {
        let msg = Array::from(&e.data());
        match msg.get(0).as_string().as_deref() {
            Some("start") => {
                if let Err(e) = start_run(msg.get(1), msg.get(2), msg.get(3)) {
                    fail(e);
                }
            }
            Some("pause") => RUN.with(|r| r.borrow_mut().paused = true),
            Some("resume") => {
                let was = RUN.with(|r| std::mem::replace(&mut r.borrow_mut().paused, false));
                if was {
                    schedule();
                }
            }
            Some("stop") => {
                let paused = RUN.with(|r| {
                    let mut run = r.borrow_mut();
                    run.stop = true;
                    std::mem::replace(&mut run.paused, false)
                });
                // A running worker sees `stop` at its next slice; a paused one needs a tick.
                if paused {
                    schedule();
                }
            }
            _ => {}
        }
    }

    pub fn start() {
        let handler = Closure::<dyn Fn(MessageEvent)>::new(on_message);
        scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
        handler.forget();
        post(&["ready".into()]);
    }
}

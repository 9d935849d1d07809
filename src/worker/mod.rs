//! The inference worker: one thread owns the candle models; the UI sends typed requests over a
//! bounded channel and reads events (progress, results, failures) from another, so it never
//! waits on a network. Requests carry an id; cancelling marks ids as unwanted and the worker
//! checks before each step (normalisation, then each method), so a cancelled or superseded run
//! stops within one step and its answer is never sent.
//!
//! The networks compute on the worker's own thread pool whose threads run below normal
//! priority (Linux niceness [`MODEL_NICENESS`]), so on a machine with few cores the UI's drawing
//! threads get the CPU first and frames keep coming while a model runs, and a busy machine
//! still leaves the models a fair share.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::ml::model::{load_models, locate_all, Finding, Model, ModelError};
use crate::ml::pose::Step;
use crate::ml::preprocess::Method;
use crate::volume::Volume;

pub mod background;

/// Run the models on one volume.
pub struct Request {
    pub id: u64,
    pub input: Input,
}

/// A volume in memory, or a file or DICOM folder the worker opens itself (worklist batches).
pub enum Input {
    Volume(Arc<Volume>),
    File(PathBuf),
}

/// What the worker reports.
pub enum Event {
    /// Request `id` is at `step` (`done` of `total` steps finished).
    Progress {
        id: u64,
        done: usize,
        total: usize,
        step: String,
    },
    /// Request `id` finished: one entry per method, each a finding or why that method failed.
    Done {
        id: u64,
        results: Vec<(Method, Result<Finding, String>)>,
    },
    /// Request `id` could not run at all (weights unreadable, volume refused).
    Failed { id: u64, error: String },
}

/// Where the worker's models come from.
#[derive(Clone, Debug)]
pub enum Weights {
    /// Embedded in the binary.
    Shipped,
    /// `<dir>/<method>.safetensors` + `<method>.recipe.json`.
    Dir(PathBuf),
}

pub struct Worker {
    requests: SyncSender<Request>,
    events: Receiver<Event>,
    /// Requests with an id at or below this are not wanted any more.
    cancelled_up_to: Arc<AtomicU64>,
}

/// The niceness of the model threads (Linux; the UI keeps 0). A nice level, not `SCHED_IDLE`:
/// an idle-class thread gets a core only when nothing else wants one, so a browser or a compile
/// beside the app starved a 2-second run to minutes. At niceness `MODEL_NICENESS` the threads
/// still yield to the UI thread when both want the same core, but keep a share under load.
/// `HEARTLOC_MODEL_NICENESS` (0–19) overrides it, for measuring.
pub const MODEL_NICENESS: i32 = 5;

fn model_niceness() -> i32 {
    std::env::var("HEARTLOC_MODEL_NICENESS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (0..=19).contains(n))
        .unwrap_or(MODEL_NICENESS)
}

/// Lower the calling thread's priority (best effort: where the OS refuses, the thread keeps
/// its priority). On Linux the thread takes [`model_niceness`] under the normal policy; elsewhere
/// the platform's priority below normal.
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        // thread-priority maps its 0–99 scale onto niceness -20..19 as
        // floor(39 · (1 − p/99)) − 20: take the p that gives the niceness wanted.
        let want = model_niceness();
        let p = (0u8..=99)
            .find(|&p| (39.0 * (1.0 - f32::from(p) / 99.0)) as i32 - 20 == want)
            .unwrap_or(0);
        if let Ok(v) = ThreadPriorityValue::try_from(p) {
            let other = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
            let _ = set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Crossplatform(v),
                other,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        if let Ok(v) = ThreadPriorityValue::try_from(25u8) {
            let _ = thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(v));
        }
    }
}

/// The pool the models compute on: lowest-priority threads, one per core. `None` where the
/// OS gives no threads (then the computation runs on the worker thread's default pool).
fn model_pool() -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("heartloc-models-{i}"))
        .start_handler(|_| lower_priority())
        .build()
        .ok()
}

pub const METHODS: [Method; 2] = [Method::Segmentation, Method::Heatmap];

/// The model thread's side: answers requests one at a time.
struct Serve {
    weights: Weights,
    outbox: mpsc::SyncSender<Event>,
    cancelled: Arc<AtomicU64>,
    wake: Arc<dyn Fn() + Send + Sync>,
    pool: Option<rayon::ThreadPool>,
    /// Loaded on the first request.
    models: Option<Vec<Model>>,
}

impl Serve {
    fn wanted(&self, id: u64) -> bool {
        id > self.cancelled.load(Ordering::Relaxed)
    }

    /// Send an event; `false` when the app has gone.
    fn send(&self, e: Event) -> bool {
        let ok = self.outbox.send(e).is_ok();
        (self.wake)();
        ok
    }

    /// Load the models on first use.
    fn ensure_models(&mut self) -> Result<(), String> {
        if self.models.is_none() {
            let dir = match &self.weights {
                Weights::Shipped => None,
                Weights::Dir(d) => Some(d.as_path()),
            };
            let m =
                load_models(&METHODS, dir).map_err(|e| format!("cannot load the models: {e}"))?;
            self.models = Some(m);
        }
        Ok(())
    }

    /// Answer one request; `false` when the app has gone and the thread should end.
    fn handle(&mut self, req: Request) -> bool {
        let id = req.id;
        if !self.wanted(id) {
            return true;
        }
        let total = METHODS.len() + 1;
        let step = "loading models".into();
        if !self.send(Event::Progress {
            id,
            done: 0,
            total,
            step,
        }) {
            return false;
        }
        let volume = match &req.input {
            Input::Volume(v) => Ok(v.clone()),
            Input::File(p) => crate::io::open(p, &Default::default())
                .map(|(v, _)| Arc::new(v))
                .map_err(|e| e.to_string()),
        };
        let ready = self.ensure_models().and(volume);
        let models = self.models.as_deref().unwrap_or_default();
        let event = match ready {
            Err(error) => Event::Failed { id, error },
            Ok(volume) => match self.locate(id, models, &volume) {
                _ if !self.wanted(id) => return true,
                Err(ModelError::Cancelled) => return true,
                Err(e) => Event::Failed {
                    id,
                    error: e.to_string(),
                },
                Ok(found) => Event::Done {
                    id,
                    results: models
                        .iter()
                        .zip(found)
                        .map(|(m, f)| (m.recipe.method, f.map_err(|e| e.to_string())))
                        .collect(),
                },
            },
        };
        self.send(event)
    }

    /// Both methods on `volume` on the model pool, with progress; stops when cancelled.
    fn locate(
        &self,
        id: u64,
        models: &[Model],
        volume: &Volume,
    ) -> Result<Vec<Result<Finding, ModelError>>, ModelError> {
        let total = METHODS.len() + 1;
        let run = || {
            locate_all(models, volume, |step| {
                let (done, step) = match step {
                    Step::Method(i) => (i + 1, models[i].recipe.method.name().to_string()),
                    Step::PoseSearch => (total - 1, "searching the scan's pose".to_string()),
                };
                self.wanted(id)
                    && self.send(Event::Progress {
                        id,
                        done,
                        total,
                        step,
                    })
            })
        };
        match &self.pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }
}

impl Worker {
    /// Start the thread. `wake` is called after each event is sent (the app asks egui for a
    /// repaint there).
    pub fn spawn(weights: Weights, wake: impl Fn() + Send + Sync + 'static) -> Self {
        let (requests, inbox) = mpsc::sync_channel::<Request>(1);
        let (outbox, events) = mpsc::sync_channel::<Event>(16);
        let cancelled_up_to = Arc::new(AtomicU64::new(0));
        let cancelled = cancelled_up_to.clone();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(wake);
        let spawned = std::thread::Builder::new()
            .name("heartloc-models".into())
            .spawn(move || {
                lower_priority();
                let mut serve = Serve {
                    weights,
                    outbox,
                    cancelled,
                    wake,
                    pool: model_pool(),
                    models: None,
                };
                for req in inbox {
                    if !serve.handle(req) {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            // Without a thread the requests go nowhere; say so on the first one.
            let (tx, rx) = mpsc::sync_channel(1);
            let _ = tx.send(Event::Failed {
                id: 0,
                error: format!("cannot start the model thread: {e}"),
            });
            return Worker {
                requests: mpsc::sync_channel(1).0,
                events: rx,
                cancelled_up_to,
            };
        }
        Worker {
            requests,
            events,
            cancelled_up_to,
        }
    }

    /// Queue a request. `Err` gives it back when the queue is full (one run waiting already):
    /// try again on a later frame.
    pub fn submit(&self, req: Request) -> Result<(), Request> {
        match self.requests.try_send(req) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(r) | TrySendError::Disconnected(r)) => Err(r),
        }
    }

    /// Cancel every request with an id up to `id`.
    pub fn cancel_up_to(&self, id: u64) {
        self.cancelled_up_to.fetch_max(id, Ordering::Relaxed);
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Wait up to `timeout` for the next event (tests, the CLI).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn phantom() -> Arc<Volume> {
        Arc::new(crate::phantom::chest_ct([96, 80, 72], 4.0).0)
    }

    fn wait_done(w: &Worker) -> Event {
        loop {
            match w.recv_timeout(Duration::from_secs(120)) {
                Some(Event::Progress { .. }) => continue,
                Some(e) => return e,
                None => panic!("the worker gave no answer in 120 s"),
            }
        }
    }

    #[test]
    fn a_request_gets_both_methods_and_a_cancelled_one_gets_nothing() {
        let w = Worker::spawn(Weights::Shipped, || {});
        w.cancel_up_to(1);
        assert!(w
            .submit(Request {
                id: 1,
                input: Input::Volume(phantom())
            })
            .is_ok());
        // Submitting may have to wait for the queue to drain.
        let mut req = Request {
            id: 2,
            input: Input::Volume(phantom()),
        };
        loop {
            match w.submit(req) {
                Ok(()) => break,
                Err(r) => {
                    req = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        match wait_done(&w) {
            Event::Done { id, results } => {
                assert_eq!(id, 2, "request 1 was cancelled and must not answer");
                let methods: Vec<Method> = results.iter().map(|(m, _)| *m).collect();
                assert_eq!(methods, METHODS.to_vec());
                for (m, r) in results {
                    let f = r.unwrap_or_else(|e| panic!("{}: {e}", m.name()));
                    assert!(f.center_lps.is_finite());
                }
            }
            Event::Failed { error, .. } => panic!("{error}"),
            Event::Progress { .. } => unreachable!(),
        }
    }

    /// The calling thread's scheduling policy and niceness, from /proc (Linux).
    #[cfg(target_os = "linux")]
    fn policy_and_niceness() -> (i64, i64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Numeric fields from the 4th (after the name in parentheses and the state): nice is
        // the 19th, policy the 41st.
        let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 4..]
            .split_whitespace()
            .collect();
        (after[37].parse().unwrap(), after[15].parse().unwrap())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_models_compute_on_lower_priority_threads_of_the_normal_class() {
        const SCHED_OTHER: i64 = 0;
        let before = policy_and_niceness();
        let pool = model_pool().unwrap();
        let inside: Vec<(i64, i64)> = pool.install(|| {
            use rayon::prelude::*;
            (0..64)
                .into_par_iter()
                .map(|_| policy_and_niceness())
                .collect()
        });
        // The normal class (never SCHED_IDLE, which starves under load), at the niceness set.
        let want = i64::from(model_niceness());
        assert!(
            inside.iter().all(|&(p, n)| p == SCHED_OTHER && n == want),
            "{inside:?}"
        );
        // The caller (here: the test thread; in the app: the UI) keeps its priority.
        assert_eq!(policy_and_niceness(), before);
    }

    #[test]
    fn unreadable_weights_fail_with_the_file_named() {
        let dir = std::env::temp_dir().join(format!("heartloc-worker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = Worker::spawn(Weights::Dir(dir.clone()), || {});
        assert!(w
            .submit(Request {
                id: 7,
                input: Input::Volume(phantom())
            })
            .is_ok());
        match wait_done(&w) {
            Event::Failed { id, error } => {
                assert_eq!(id, 7);
                assert!(error.contains("segmentation.recipe.json"), "{error}");
            }
            _ => panic!("expected a failure"),
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

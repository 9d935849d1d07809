//! Background jobs beside the inference worker, each on its own thread below normal priority
//! with its own model pool (as the worker's): learning a landmark from annotations
//! ([`Learner`]) and the active landmark models' suggestions for a volume ([`Suggester`]).
//! Neither blocks the worker: the heart models keep answering while a landmark trains.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use super::{lower_priority, model_pool};
use crate::ml::learn::{learn, LearnOptions};
use crate::ml::model::{Finding, Model};
use crate::ml::preprocess::Method;
use crate::ml::train::Progress;
use crate::ml::versions::{Store, Version};
use crate::volume::Volume;

/// Where a training run is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearnProgress {
    /// "loading cases 3/12", "training", …
    pub stage: String,
    /// Of the run's time (0–1).
    pub fraction: f32,
    /// The held-out median error when last measured (mm).
    pub held_out_median_mm: Option<f64>,
}

pub enum LearnEvent {
    Progress(LearnProgress),
    /// The new version (now the active one), or why there is none ("cancelled" included).
    Finished(Result<Version, String>),
}

/// A landmark being learnt on its own thread, into a staging folder of the store that becomes
/// a version only when the run ends well.
pub struct Learner {
    pub landmark: String,
    events: Receiver<LearnEvent>,
    cancel: Arc<AtomicBool>,
}

impl Learner {
    /// Start learning `opts.landmark` (its `out` and `cancel` are the store's and the
    /// learner's). `wake` is called after each event (the app asks for a repaint).
    pub fn start(
        store: Store,
        opts: LearnOptions,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let (tx, events) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let landmark = opts.landmark.clone();
        let flag = cancel.clone();
        let wake = Arc::new(wake);
        let send = move |e: LearnEvent| {
            let _ = tx.send(e);
            wake();
        };
        let failed = send.clone();
        let spawned = std::thread::Builder::new()
            .name("heartloc-learn".into())
            .spawn(move || {
                lower_priority();
                let result = run(&store, opts, flag, &send);
                send(LearnEvent::Finished(result));
            });
        if let Err(e) = spawned {
            failed(LearnEvent::Finished(Err(format!(
                "cannot start the training thread: {e}"
            ))));
        }
        Learner {
            landmark,
            events,
            cancel,
        }
    }

    /// Stop before the next step; the run then finishes with "cancelled" and no new version.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The events waiting.
    pub fn poll(&self) -> Vec<LearnEvent> {
        self.events.try_iter().collect()
    }
}

fn run(
    store: &Store,
    mut opts: LearnOptions,
    cancel: Arc<AtomicBool>,
    send: &(impl Fn(LearnEvent) + Sync),
) -> Result<Version, String> {
    let staged = store.stage(&opts.landmark).map_err(|e| e.to_string())?;
    opts.out = staged.clone();
    opts.cancel = Some(cancel);
    let seconds = opts.max_minutes * 60.0;
    let mut state = LearnProgress::default();
    let mut report = |p: Progress| {
        match p {
            Progress::Loading { done, total } => {
                state.stage = format!("loading cases {done}/{total}");
                state.fraction = 0.0;
            }
            Progress::Step { elapsed, .. } => {
                state.stage = "training".into();
                state.fraction = (elapsed / seconds.max(1e-9)).clamp(0.0, 1.0) as f32;
            }
            Progress::Epoch(r) => {
                if r.val_center_error_mm_median.is_finite() {
                    state.held_out_median_mm = Some(r.val_center_error_mm_median);
                }
            }
        }
        send(LearnEvent::Progress(state.clone()));
    };
    let learnt = match model_pool() {
        Some(pool) => pool.install(|| learn(&opts, &mut report)),
        None => learn(&opts, &mut report),
    };
    match learnt {
        Ok(_) => store
            .commit(&opts.landmark, &staged)
            .map_err(|e| e.to_string()),
        Err(e) => {
            store.discard(&staged);
            Err(e.to_string())
        }
    }
}

/// One landmark model's answer on a volume.
pub struct Suggestion {
    pub version: Version,
    pub found: Result<Finding, String>,
}

/// The active landmark models run on one volume, on their own thread.
pub struct Suggester {
    /// The document (`GpuVolume::id`) they run on.
    pub volume_id: u64,
    answer: Receiver<Vec<Suggestion>>,
}

impl Suggester {
    pub fn start(
        volume_id: u64,
        volume: Arc<Volume>,
        versions: Vec<Version>,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let (tx, answer) = mpsc::channel();
        let job = move || {
            lower_priority();
            let locate = |v: &Version| -> Result<Finding, String> {
                let m = Model::load(&v.dir, Method::Heatmap).map_err(|e| e.to_string())?;
                m.locate(&volume, None).map_err(|e| e.to_string())
            };
            let all = || -> Vec<Suggestion> {
                versions
                    .iter()
                    .map(|v| Suggestion {
                        version: v.clone(),
                        found: locate(v),
                    })
                    .collect()
            };
            let out = match model_pool() {
                Some(pool) => pool.install(all),
                None => all(),
            };
            let _ = tx.send(out);
            wake();
        };
        if let Err(e) = std::thread::Builder::new()
            .name("heartloc-suggest".into())
            .spawn(job)
        {
            eprintln!("heartloc: cannot start the suggestion thread: {e}");
        }
        Suggester { volume_id, answer }
    }

    /// The answers, once they are there (none, should the thread have gone without one).
    pub fn poll(&self) -> Option<Vec<Suggestion>> {
        match self.answer.try_recv() {
            Ok(list) => Some(list),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Vec::new()),
        }
    }
}

//! Starting runs: never two of the same probe at once, at most
//! `concurrency` of all probes together (the rest wait queued), each under
//! a deadline, each recorded in the store as it goes (queued, running,
//! finished with its findings) and announced to the event stream. What a
//! run does is the [`Executor`]'s business: the daemon's runs probes in the
//! sandbox, tests substitute their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use task_set::TaskSet;
use tokio::sync::{Semaphore, broadcast};
use tracing::Instrument;

use crate::runtime::{FailureReason, RunOutcome, RunStatus};
use crate::store::{RunRecord, Store, StoreError, Trigger};

/// What the dispatcher needs to know of a job.
pub trait Job: Send + Sync + 'static {
    /// The probe's name (runs of one name never overlap).
    fn name(&self) -> &str;
    /// How long a run may take before the dispatcher gives up on it. The
    /// sandbox enforces its own deadline; this is the backstop.
    fn deadline(&self) -> Duration;
}

/// Runs one job.
#[async_trait::async_trait]
pub trait Executor<J>: Send + Sync + 'static {
    async fn execute(&self, job: Arc<J>, run_id: String) -> RunOutcome;
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("{probe} is already running (run {run_id})")]
    AlreadyRunning { probe: String, run_id: String },
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Extra time past a job's deadline before the dispatcher fails the run itself.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// Hook called after each finished run (metrics).
pub type OnFinished = Arc<dyn Fn(&RunOutcome) + Send + Sync>;

struct Inner<J> {
    permits: Arc<Semaphore>,
    /// Probe name to the id of its run queued or running.
    running: Mutex<HashMap<String, String>>,
    store: Store,
    events: broadcast::Sender<RunRecord>,
    executor: Arc<dyn Executor<J>>,
    on_finished: Option<OnFinished>,
    tasks: TaskSet,
    grace: Duration,
}

/// Starts runs. Cheap to clone.
pub struct Dispatcher<J> {
    inner: Arc<Inner<J>>,
}

impl<J> Clone for Dispatcher<J> {
    fn clone(&self) -> Self {
        Dispatcher {
            inner: self.inner.clone(),
        }
    }
}

impl<J: Job> Dispatcher<J> {
    pub fn new(
        store: Store,
        executor: Arc<dyn Executor<J>>,
        concurrency: usize,
        events: broadcast::Sender<RunRecord>,
        on_finished: Option<OnFinished>,
        grace: Duration,
    ) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(concurrency.max(1))),
                running: Mutex::new(HashMap::new()),
                store,
                events,
                executor,
                on_finished,
                tasks: TaskSet::default(),
                grace,
            }),
        }
    }

    /// Queues a run of `job` and returns it as recorded (queued). Refused
    /// when a run of the same probe is queued or running.
    pub async fn dispatch(
        &self,
        job: Arc<J>,
        trigger: Trigger,
    ) -> Result<RunRecord, DispatchError> {
        let inner = &self.inner;
        if inner.tasks.closed() {
            return Err(DispatchError::ShuttingDown);
        }
        let name = job.name().to_string();
        let run_id = uuid::Uuid::new_v4().to_string();
        {
            let mut running = inner
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(id) = running.get(&name) {
                return Err(DispatchError::AlreadyRunning {
                    probe: name,
                    run_id: id.clone(),
                });
            }
            running.insert(name.clone(), run_id.clone());
        }
        let queued = async {
            inner
                .store
                .record_run_queued_by(&name, &run_id, trigger)
                .await?;
            inner
                .store
                .run(&run_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "runs",
                    detail: format!("run {run_id} vanished after it was queued"),
                })
        }
        .await;
        let record = match queued {
            Ok(r) => r,
            Err(e) => {
                inner
                    .running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&name);
                return Err(e.into());
            }
        };
        let _ = inner.events.send(record.clone());
        let span =
            tracing::info_span!("run", probe = %name, run = %run_id, trigger = trigger.as_str());
        let this = self.clone();
        inner.tasks.spawn(
            async move {
                this.execute(job, run_id.clone()).await;
                this.inner
                    .running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&name);
            }
            .instrument(span),
        );
        Ok(record)
    }

    async fn execute(&self, job: Arc<J>, run_id: String) {
        let inner = &self.inner;
        let Ok(_permit) = inner.permits.clone().acquire_owned().await else {
            return;
        };
        let name = job.name().to_string();
        if let Err(e) = inner.store.record_run_started(&name, &run_id).await {
            tracing::error!("cannot record the run's start: {e}");
        }
        self.announce(&run_id).await;
        tracing::info!("run started");
        let deadline = job.deadline() + inner.grace;
        let mut outcome =
            match tokio::time::timeout(deadline, inner.executor.execute(job, run_id.clone())).await
            {
                Ok(outcome) => outcome,
                Err(_) => RunOutcome {
                    reason: Some(FailureReason::Timeout {
                        limit_ms: deadline.as_millis() as u64,
                    }),
                    duration: deadline,
                    ..RunOutcome::host_failure(name.clone(), run_id.clone(), String::new())
                },
            };
        outcome.probe = name;
        outcome.run_id = run_id.clone();
        match inner.store.record_run_finished(&outcome).await {
            Ok(ingest) => tracing::info!(
                status = ?outcome.status,
                findings = ingest.findings,
                new = ingest.new,
                resolved = ingest.resolved,
                duration_ms = outcome.duration.as_millis() as u64,
                "run finished"
            ),
            Err(e) => tracing::error!("cannot record the run's end: {e}"),
        }
        if outcome.status == RunStatus::Failed
            && let Some(reason) = &outcome.reason
        {
            tracing::warn!("run failed: {reason}");
        }
        if let Some(hook) = &inner.on_finished {
            hook(&outcome);
        }
        self.announce(&run_id).await;
    }

    async fn announce(&self, run_id: &str) {
        if let Ok(Some(record)) = self.inner.store.run(run_id).await {
            let _ = self.inner.events.send(record);
        }
    }

    /// The probes with a run queued or running, and those runs' ids.
    pub fn running(&self) -> HashMap<String, String> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting runs and waits for those in flight, at most `wait`;
    /// runs still going then are left to be marked interrupted at the next start.
    pub async fn shutdown(&self, wait: Duration) -> bool {
        self.inner.tasks.close();
        tokio::time::timeout(wait, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    /// Waits until no run is queued or running (tests, benchmarks).
    pub async fn idle(&self) {
        self.inner.tasks.wait().await;
    }
}

/// Tasks in flight, waitable as a group.
mod task_set {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::sync::Notify;

    /// Counts spawned tasks; `wait` returns when none is left.
    #[derive(Default)]
    pub struct TaskSet {
        state: Arc<State>,
    }

    #[derive(Default)]
    struct State {
        live: AtomicUsize,
        closed: AtomicBool,
        idle: Notify,
    }

    struct Guard(Arc<State>);

    impl Drop for Guard {
        fn drop(&mut self) {
            if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.0.idle.notify_waiters();
            }
        }
    }

    impl TaskSet {
        pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
            self.state.live.fetch_add(1, Ordering::AcqRel);
            let guard = Guard(self.state.clone());
            tokio::spawn(async move {
                let _guard = guard;
                f.await;
            });
        }

        pub fn close(&self) {
            self.state.closed.store(true, Ordering::Release);
        }

        pub fn closed(&self) -> bool {
            self.state.closed.load(Ordering::Acquire)
        }

        pub async fn wait(&self) {
            loop {
                let notified = self.state.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.state.live.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;
    use crate::store::RunPhase;

    struct TestJob {
        name: String,
        deadline: Duration,
    }

    impl Job for TestJob {
        fn name(&self) -> &str {
            &self.name
        }
        fn deadline(&self) -> Duration {
            self.deadline
        }
    }

    /// Runs block until released; counts how many run at once.
    #[derive(Default)]
    struct Gate {
        release: Notify,
        now: AtomicUsize,
        peak: AtomicUsize,
        started: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Executor<TestJob> for Gate {
        async fn execute(&self, job: Arc<TestJob>, run_id: String) -> RunOutcome {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(n, Ordering::SeqCst);
            self.started.fetch_add(1, Ordering::SeqCst);
            if job.name != "quick" {
                self.release.notified().await;
            }
            self.now.fetch_sub(1, Ordering::SeqCst);
            RunOutcome {
                status: RunStatus::Succeeded,
                reason: None,
                ..RunOutcome::host_failure(job.name.clone(), run_id, String::new())
            }
        }
    }

    fn job(name: &str) -> Arc<TestJob> {
        Arc::new(TestJob {
            name: name.into(),
            deadline: Duration::from_secs(600),
        })
    }

    async fn setup(
        concurrency: usize,
    ) -> (tempfile::TempDir, Dispatcher<TestJob>, Arc<Gate>, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db")).await.unwrap();
        let gate = Arc::new(Gate::default());
        let (tx, _) = broadcast::channel(64);
        let d = Dispatcher::new(
            store.clone(),
            gate.clone(),
            concurrency,
            tx,
            None,
            Duration::ZERO,
        );
        (dir, d, gate, store)
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        for _ in 0..2000 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("timed out waiting until {what}");
    }

    #[tokio::test]
    async fn a_probe_never_runs_twice_at_once() {
        let (_dir, d, gate, store) = setup(4).await;
        let first = d.dispatch(job("a"), Trigger::Manual).await.unwrap();
        assert_eq!(first.state, RunPhase::Queued);
        assert_eq!(first.trigger, Trigger::Manual);
        until("a started", || gate.started.load(Ordering::SeqCst) == 1).await;
        match d.dispatch(job("a"), Trigger::Schedule).await {
            Err(DispatchError::AlreadyRunning { probe, run_id }) => {
                assert_eq!((probe.as_str(), run_id), ("a", first.id.clone()));
            }
            other => panic!("{other:?}"),
        }
        gate.release.notify_waiters();
        d.idle().await;
        assert_eq!(
            store.run(&first.id).await.unwrap().unwrap().state,
            RunPhase::Succeeded
        );
        // Done: the next one may start.
        d.dispatch(job("a"), Trigger::Schedule).await.unwrap();
        until("a started again", || {
            gate.started.load(Ordering::SeqCst) == 2
        })
        .await;
        gate.release.notify_waiters();
        d.idle().await;
    }

    #[tokio::test]
    async fn the_concurrency_limit_holds_and_the_rest_wait_queued() {
        let (_dir, d, gate, store) = setup(2).await;
        let mut ids = Vec::new();
        for name in ["a", "b", "c", "d", "e"] {
            ids.push(d.dispatch(job(name), Trigger::Schedule).await.unwrap().id);
        }
        until("two started", || gate.started.load(Ordering::SeqCst) == 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(gate.started.load(Ordering::SeqCst), 2, "the others wait");
        let mut queued = 0;
        for id in &ids {
            if store.run(id).await.unwrap().unwrap().state == RunPhase::Queued {
                queued += 1;
            }
        }
        assert_eq!(queued, 3);
        while gate.started.load(Ordering::SeqCst) < 5 || gate.now.load(Ordering::SeqCst) > 0 {
            gate.release.notify_waiters();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        d.idle().await;
        assert_eq!(gate.peak.load(Ordering::SeqCst), 2);
        for id in &ids {
            assert_eq!(
                store.run(id).await.unwrap().unwrap().state,
                RunPhase::Succeeded
            );
        }
    }

    #[tokio::test]
    async fn a_run_past_its_deadline_fails_as_timed_out_and_frees_the_probe() {
        let (_dir, d, gate, store) = setup(1).await;
        let stuck = Arc::new(TestJob {
            name: "stuck".into(),
            deadline: Duration::from_millis(200),
        });
        let run = d.dispatch(stuck.clone(), Trigger::Schedule).await.unwrap();
        d.idle().await;
        let rec = store.run(&run.id).await.unwrap().unwrap();
        assert_eq!(rec.state, RunPhase::Failed);
        assert!(
            rec.reason
                .as_deref()
                .unwrap()
                .contains("timed out after 200 ms"),
            "{:?}",
            rec.reason
        );
        assert_eq!(
            gate.now.load(Ordering::SeqCst),
            1,
            "the executor was abandoned"
        );
        assert!(d.running().is_empty());
        // A quick job runs next: the permit was given back.
        d.dispatch(job("quick"), Trigger::Manual).await.unwrap();
        d.idle().await;
        assert_eq!(gate.started.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn events_follow_a_run_from_queued_to_finished() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db")).await.unwrap();
        let gate = Arc::new(Gate::default());
        let (tx, mut rx) = broadcast::channel(64);
        let d = Dispatcher::new(store, gate, 1, tx, None, Duration::ZERO);
        d.dispatch(job("quick"), Trigger::Manual).await.unwrap();
        d.idle().await;
        let states: Vec<RunPhase> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| r.state)
            .collect();
        assert_eq!(
            states,
            [RunPhase::Queued, RunPhase::Running, RunPhase::Succeeded]
        );
        assert!(d.shutdown(Duration::from_secs(1)).await);
        assert!(matches!(
            d.dispatch(job("quick"), Trigger::Manual).await,
            Err(DispatchError::ShuttingDown)
        ));
    }
}

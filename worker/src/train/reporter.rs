//! The metric reporter: a background thread that batches points and posts them to the API.
//!
//! Training never waits on the network. When the API is unreachable, batches go to the spill file
//! and the thread retries with exponential backoff; once the API answers again the spill file is
//! replayed first. At the end, [`Reporter::finish`] keeps trying for a while, then leaves whatever
//! is still undelivered in the spill file for the executor to replay.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orrery_core::client::ApiClient;
use orrery_core::dto::{MetricBatch, MetricPoint};
use orrery_core::spill;

#[derive(Debug, Clone)]
pub struct ReporterOptions {
    pub max_batch: usize,
    pub flush_interval: Duration,
    pub max_backoff: Duration,
    /// How long `finish` keeps retrying an unreachable API.
    pub final_wait: Duration,
}

impl Default for ReporterOptions {
    fn default() -> Self {
        ReporterOptions {
            max_batch: 500,
            flush_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            final_wait: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportStats {
    pub delivered: usize,
    /// Points refused by the API (4xx): they would never be accepted, so they are dropped.
    pub rejected: usize,
    /// Points left in the spill file when the reporter stopped.
    pub left_in_spill: usize,
}

enum Msg {
    Point(MetricPoint),
    /// Deliver or spill everything received so far, then answer.
    Barrier(mpsc::Sender<()>),
    Finish,
}

pub struct Reporter {
    tx: Sender<Msg>,
    /// The delivering thread; `None` in a [`Reporter::scoped`] view of another reporter.
    handle: Option<JoinHandle<ReportStats>>,
    /// Put before every name this reporter logs (empty but in a scoped view).
    prefix: String,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Sender_ {
    client: Option<ApiClient>,
    trial_id: i64,
    spill: PathBuf,
    opts: ReporterOptions,
    backoff: Duration,
    next_retry: Instant,
    stats: ReportStats,
}

impl Sender_ {
    /// Posts points in chunks; `Ok(false)` when the API is unreachable (the caller spills).
    fn post(&mut self, points: &[MetricPoint]) -> bool {
        let Some(client) = &self.client else {
            return false;
        };
        for chunk in points.chunks(self.opts.max_batch.max(1)) {
            match client.post_metrics(
                self.trial_id,
                &MetricBatch {
                    points: chunk.to_vec(),
                },
            ) {
                Ok(_) => self.stats.delivered += chunk.len(),
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "metrics not delivered; spilling to {} and retrying in {:?}", self.spill.display(), self.backoff);
                    return false;
                }
                Err(e) => {
                    tracing::error!(error = %e, points = chunk.len(), "the API refused a metric batch; dropping it");
                    self.stats.rejected += chunk.len();
                }
            }
        }
        true
    }

    fn failed(&mut self) {
        self.next_retry = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.opts.max_backoff);
    }

    /// Replays the spill file if it is time; true when nothing is left in it.
    fn replay(&mut self) -> bool {
        if !spill::has_points(&self.spill) {
            return true;
        }
        if self.client.is_none() {
            // No API: the spill file is the destination, not a queue.
            return false;
        }
        if Instant::now() < self.next_retry {
            return false;
        }
        let points = match spill::read(&self.spill) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spill file {}", self.spill.display());
                return false;
            }
        };
        if self.post(&points) {
            if let Err(e) = std::fs::remove_file(&self.spill) {
                tracing::error!(error = %e, "cannot remove the replayed spill file");
            }
            tracing::info!(points = points.len(), "replayed spilled metrics");
            self.backoff = Duration::from_millis(250);
            true
        } else {
            self.failed();
            false
        }
    }

    fn flush(&mut self, buf: &mut Vec<MetricPoint>) {
        if buf.is_empty() && !spill::has_points(&self.spill) {
            return;
        }
        // Order does not matter for correctness (ingest is keyed), but replaying first keeps the
        // spill file from growing while the API is up.
        let delivered = self.replay() && (buf.is_empty() || self.post(buf));
        if !delivered && !buf.is_empty() {
            if let Err(e) = spill::append(&self.spill, buf) {
                tracing::error!(error = %e, "cannot write the spill file; {} points lost", buf.len());
            }
            if Instant::now() >= self.next_retry {
                self.failed();
            }
        }
        buf.clear();
    }
}

impl Reporter {
    /// Starts the reporter. Without a client (no API configured) every point goes to `spill`.
    pub fn start(
        client: Option<ApiClient>,
        trial_id: i64,
        spill: PathBuf,
        opts: ReporterOptions,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Msg>();
        let handle = std::thread::Builder::new()
            .name("metric-reporter".into())
            .spawn(move || {
                let mut s = Sender_ {
                    client,
                    trial_id,
                    spill,
                    backoff: Duration::from_millis(250),
                    next_retry: Instant::now(),
                    opts,
                    stats: ReportStats::default(),
                };
                let mut buf: Vec<MetricPoint> = Vec::new();
                let mut last = Instant::now();
                loop {
                    let finishing = match rx.recv_timeout(s.opts.flush_interval) {
                        Ok(Msg::Point(p)) => {
                            buf.push(p);
                            false
                        }
                        Ok(Msg::Barrier(ack)) => {
                            s.flush(&mut buf);
                            last = Instant::now();
                            let _ = ack.send(());
                            false
                        }
                        Ok(Msg::Finish) | Err(RecvTimeoutError::Disconnected) => true,
                        Err(RecvTimeoutError::Timeout) => false,
                    };
                    if finishing
                        || buf.len() >= s.opts.max_batch
                        || last.elapsed() >= s.opts.flush_interval
                    {
                        s.flush(&mut buf);
                        last = Instant::now();
                    }
                    if finishing {
                        break;
                    }
                }
                let deadline = Instant::now() + s.opts.final_wait;
                while s.client.is_some() && spill::has_points(&s.spill) && Instant::now() < deadline
                {
                    std::thread::sleep(
                        s.next_retry
                            .saturating_duration_since(Instant::now())
                            .min(Duration::from_secs(1)),
                    );
                    s.replay();
                }
                s.stats.left_in_spill = spill::read(&s.spill).map(|p| p.len()).unwrap_or(0);
                s.stats
            })
            .expect("spawn the metric reporter thread");
        Reporter {
            tx,
            handle: Some(handle),
            prefix: String::new(),
        }
    }

    /// A view that logs through this reporter with `prefix` before every name: a trial that
    /// trains auxiliary models first (DoReMi's reference and proxy) runs them through the shared
    /// loop, and their `train/loss`, `eval/…` land under their own names.
    pub fn scoped(&self, prefix: &str) -> Reporter {
        Reporter {
            tx: self.tx.clone(),
            handle: None,
            prefix: format!("{}{prefix}", self.prefix),
        }
    }

    pub fn log(&self, name: &str, step: i64, value: f64) {
        let _ = self.tx.send(Msg::Point(MetricPoint {
            name: format!("{}{name}", self.prefix),
            step,
            value,
            wall_time: now_secs(),
        }));
    }

    /// Returns once every point logged so far is delivered or safely in the spill file. Called before
    /// a checkpoint is written: a worker killed after it resumes from the checkpoint and logs only
    /// later steps again, so the points before it must not be left in memory.
    pub fn barrier(&self) {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Msg::Barrier(ack)).is_ok() {
            let _ = done.recv();
        }
    }

    /// Flushes everything, waiting up to `final_wait` for an unreachable API. A scoped view has
    /// nothing of its own to finish (its reporter delivers its points).
    pub fn finish(self) -> ReportStats {
        let Some(handle) = self.handle else {
            return ReportStats::default();
        };
        let _ = self.tx.send(Msg::Finish);
        handle.join().unwrap_or_else(|_| {
            tracing::error!(
                "the metric reporter thread panicked; undelivered points may be in the spill file"
            );
            ReportStats::default()
        })
    }
}

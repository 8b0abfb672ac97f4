//! A lane: named OS threads that each own one database connection and take boxed jobs
//! from one bounded queue, answering on a tokio oneshot.
//!
//! Both stores use it: the metadata store (one writer lane, one read lane) and the
//! warehouse (interactive lane for user queries, background lane as the single writer).
//! Connections never cross threads and are never held across an `.await`; a full queue is
//! reported at once (the caller answers 503) instead of piling up work.

use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError, bounded};
use tokio::sync::oneshot;

type Job<C> = Box<dyn FnOnce(&mut C) + Send>;

/// After how long without a job, and what to do then.
pub(crate) type OnIdle<C> = Option<(std::time::Duration, Arc<dyn Fn(&mut C) + Send + Sync>)>;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LaneError {
    #[error("the queue is full")]
    Full,
    #[error("the lane is shut down")]
    Closed,
}

pub(crate) struct Lane<C> {
    name: &'static str,
    sender: RwLock<Option<Sender<Job<C>>>>,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

impl<C: Send + 'static> Lane<C> {
    /// Starts one thread per connection, named `<name>-<i>`. `on_exit` runs on each thread
    /// with its connection once the lane is closed and the queue drained.
    pub(crate) fn start(
        name: &'static str,
        conns: Vec<C>,
        capacity: usize,
        on_exit: fn(&mut C),
    ) -> std::io::Result<Self> {
        Self::start_with_idle(name, conns, capacity, on_exit, None)
    }

    /// Like [`Lane::start`]; `on_idle` runs on a thread that had no job for that long.
    pub(crate) fn start_with_idle(
        name: &'static str,
        conns: Vec<C>,
        capacity: usize,
        on_exit: fn(&mut C),
        on_idle: OnIdle<C>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Job<C>>(capacity);
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut threads = Vec::with_capacity(conns.len());
        for (i, mut conn) in conns.into_iter().enumerate() {
            let rx = rx.clone();
            let queued = queued.clone();
            let on_idle = on_idle.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    loop {
                        let job = match &on_idle {
                            None => rx.recv().ok(),
                            Some((after, idle)) => match rx.recv_timeout(*after) {
                                Ok(job) => Some(job),
                                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                                    idle(&mut conn);
                                    rx.recv().ok()
                                }
                                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => None,
                            },
                        };
                        let Some(job) = job else { break };
                        queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        // A panicking job (a bug) fails its own caller, whose answer channel
                        // is dropped, and must not take the lane's thread with it: a dead
                        // worker would answer nothing again until a restart. The connection
                        // is only ever used through whole jobs, so the next job finds it
                        // usable (rollback on error is each job's own business).
                        let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!(lane = name, "a job panicked; the worker goes on");
                        }
                    }
                    on_exit(&mut conn);
                })?;
            threads.push(handle);
        }
        Ok(Self {
            name,
            sender: RwLock::new(Some(tx)),
            threads: std::sync::Mutex::new(threads),
            queued,
        })
    }

    /// Queues `f`; the receiver yields its result. Never blocks.
    pub(crate) fn submit<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, LaneError>
    where
        F: FnOnce(&mut C) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job<C> = Box::new(move |conn| {
            // The caller may have given up (timeout, disconnect); its loss, not ours.
            let _ = tx.send(f(conn));
        });
        let guard = crate::locks::read(&self.sender);
        let sender = guard.as_ref().ok_or(LaneError::Closed)?;
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sender.try_send(job).map_err(|e| {
            self.queued
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => LaneError::Full,
                TrySendError::Disconnected(_) => LaneError::Closed,
            }
        })?;
        Ok(rx)
    }

    /// Jobs waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// Refuses new jobs, lets queued ones finish, runs `on_exit` and joins the threads.
    pub(crate) fn close_and_join(&self) {
        crate::locks::write(&self.sender).take();
        let threads = std::mem::take(&mut *crate::locks::lock(&self.threads));
        for t in threads {
            if t.join().is_err() {
                tracing::error!(lane = self.name, "a worker thread panicked");
            }
        }
    }
}

impl<C> Drop for Lane<C> {
    fn drop(&mut self) {
        // Dropping the sender ends the threads' loops; they finish on their own.
        crate::locks::write(&self.sender).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_lane_threads() {
        let lane = Lane::start("t", vec![1u32, 2u32], 4, |_| {}).unwrap();
        let rx = lane.submit(|c: &mut u32| (*c, std::thread::current().name().map(str::to_owned)));
        let (_, name) = rx.unwrap().await.unwrap();
        assert!(name.unwrap().starts_with("t-"));
        lane.close_and_join();
        assert_eq!(lane.submit(|_| ()).unwrap_err(), LaneError::Closed);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_worker_goes_on() {
        let lane = Lane::start("t", vec![0u32], 4, |_| {}).unwrap();
        let bad = lane.submit(|_: &mut u32| -> u32 { panic!("a bug in a job") });
        assert!(bad.unwrap().await.is_err(), "its caller sees the job fail");
        let good = lane.submit(|c: &mut u32| *c + 1).unwrap();
        assert_eq!(good.await.unwrap(), 1);
        lane.close_and_join();
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let (block_tx, block_rx) = std::sync::mpsc::channel::<()>();
        let lane = Lane::start("t", vec![()], 1, |_| {}).unwrap();
        let block_rx = std::sync::Mutex::new(block_rx);
        let first = lane
            .submit(move |_| block_rx.lock().unwrap().recv().ok())
            .unwrap();
        // The first job may still be in the queue or already running; fill what is left.
        let mut refused = false;
        let mut pending = Vec::new();
        for _ in 0..3 {
            match lane.submit(|_| ()) {
                Ok(rx) => pending.push(rx),
                Err(e) => {
                    assert_eq!(e, LaneError::Full);
                    refused = true;
                }
            }
        }
        assert!(refused);
        block_tx.send(()).unwrap();
        first.await.unwrap();
        for rx in pending {
            rx.await.unwrap();
        }
    }
}

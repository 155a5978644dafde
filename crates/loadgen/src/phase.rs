//! Running one phase of the simulation: many device jobs at once, a bounded number in flight,
//! the whole phase under a deadline, with a progress line on stderr while it runs.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// One device's job in a phase.
pub type Job<R> = Pin<Box<dyn Future<Output = R> + Send>>;

/// Counts for the progress line.
struct Progress {
    label: String,
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    finished: AtomicBool,
    started: Instant,
}

impl Progress {
    fn line(&self) -> String {
        format!(
            "{}: {}/{} done, {} failed, {:.1} s",
            self.label,
            self.done.load(Ordering::Relaxed),
            self.total,
            self.failed.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// Runs `jobs` with at most `in_flight` at a time and returns their results in order. Fails if
/// the phase outlives `deadline` (the jobs still running are aborted). `failed` tells the
/// progress line which results count as failures.
pub async fn run<R: Send + 'static>(
    label: &str,
    jobs: Vec<Job<R>>,
    in_flight: usize,
    deadline: Duration,
    failed: fn(&R) -> bool,
) -> Result<Vec<R>> {
    let progress = Arc::new(Progress {
        label: label.to_owned(),
        total: jobs.len(),
        done: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        finished: AtomicBool::new(false),
        started: Instant::now(),
    });
    let ticker = tokio::spawn(tick(progress.clone()));
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut set = JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let (permits, progress) = (permits.clone(), progress.clone());
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = job.await;
            if failed(&result) {
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
            progress.done.fetch_add(1, Ordering::Relaxed);
            (i, result)
        });
    }
    let mut results: Vec<Option<R>> = (0..progress.total).map(|_| None).collect();
    let collected = tokio::time::timeout(deadline, async {
        while let Some(joined) = set.join_next().await {
            let (i, result) = joined?;
            results[i] = Some(result);
        }
        anyhow::Ok(())
    })
    .await;
    progress.finished.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    match collected {
        Err(_) => {
            set.abort_all();
            bail!("{label}: not finished within {deadline:?}")
        }
        Ok(joined) => joined?,
    }
    Ok(results.into_iter().flatten().collect())
}

/// Prints the progress line: rewritten in place on a terminal, every 5 s otherwise (logs).
async fn tick(progress: Arc<Progress>) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal { Duration::from_millis(250) } else { Duration::from_secs(5) };
    let show = |end: bool| {
        if terminal {
            eprint!("\r{}   {}", progress.line(), if end { "\n" } else { "" });
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{}", progress.line());
        }
    };
    let mut last = Instant::now();
    while !progress.finished.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last.elapsed() >= every {
            show(false);
            last = Instant::now();
        }
    }
    show(true);
}

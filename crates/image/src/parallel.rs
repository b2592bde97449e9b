//! Run independent jobs on a few threads; the first error wins (all jobs still finish,
//! so no thread outlives the call).

use crate::error::Result;
use std::sync::Mutex;

pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

pub fn run<T: Send, F>(jobs: Vec<T>, f: F) -> Result<()>
where
    F: Fn(T) -> Result<()> + Sync,
{
    run_with(jobs, workers(), f)
}

pub fn run_with<T: Send, F>(jobs: Vec<T>, threads: usize, f: F) -> Result<()>
where
    F: Fn(T) -> Result<()> + Sync,
{
    if jobs.len() <= 1 {
        for j in jobs {
            f(j)?;
        }
        return Ok(());
    }
    let queue = Mutex::new(jobs.into_iter());
    let first_err = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if first_err.lock().unwrap().is_some() {
                    return;
                }
                let Some(job) = queue.lock().unwrap().next() else {
                    return;
                };
                if let Err(e) = f(job) {
                    first_err.lock().unwrap().get_or_insert(e);
                }
            });
        }
    });
    match first_err.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_all_and_reports_error() {
        let n = AtomicUsize::new(0);
        run_with((0..20).collect(), 3, |_| {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 20);
        let r = run_with((0..5).collect(), 2, |i| {
            if i == 3 {
                Err(crate::error::Error::BadCreds("x".into()))
            } else {
                Ok(())
            }
        });
        assert!(r.is_err());
    }
}

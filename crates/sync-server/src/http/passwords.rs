//! Password hashing, bounded and kept apart from storage: argon2 is slow on purpose (tens of
//! milliseconds of CPU and 19 MiB per check), so anonymous sign-ins must not take the storage
//! slots devices sync in ([`super::blocking`]). A sign-in is first admitted (at most
//! `at_once + waiting` at a time; the rest are refused at once, 429: a county-wide bound on
//! the work anonymous requests can cause), then waits for one of `at_once` turns, and in its
//! turn does everything it needs — its storage statements and its hash — on tokio's blocking
//! pool without a storage slot.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use crate::auth;

/// The password checks in flight and their bounds.
pub struct PasswordChecks {
    running: Semaphore,
    admitted: Semaphore,
    at_once: usize,
    capacity: usize,
    checked: AtomicU64,
}

/// Every place for a password check is taken; retry shortly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many sign-ins at once; retry shortly")]
pub struct Busy;

impl PasswordChecks {
    /// At most `at_once` hashes at a time, and `waiting` more waiting.
    pub fn new(at_once: usize, waiting: usize) -> Self {
        let at_once = at_once.max(1);
        let capacity = at_once.saturating_add(waiting);
        Self {
            running: Semaphore::new(at_once),
            admitted: Semaphore::new(capacity),
            at_once,
            capacity,
            checked: AtomicU64::new(0),
        }
    }

    /// Admits a sign-in, or refuses it at once when every place is taken.
    pub fn admit(&self) -> Result<Admission<'_>, Busy> {
        Ok(Admission { checks: self, _admitted: self.admitted.try_acquire().map_err(|_| Busy)? })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let turn = self.admit()?.turn().await?;
        turn.run(f).await
    }

    /// Whether `password` matches the stored argon2 hash (a damaged hash never matches). With
    /// no stored hash (an unknown login) the password is checked against a dummy hash, the
    /// same work, and never matches.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Busy> {
        let turn = self.admit()?.turn().await?;
        turn.verify(password, stored).await
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<Result<String, auth::PasswordError>, Busy> {
        self.run(move || auth::hash_password(&password)).await
    }

    /// Hashes running now.
    pub fn running(&self) -> usize {
        self.at_once.saturating_sub(self.running.available_permits())
    }

    /// Checks waiting for their turn now.
    pub fn waiting(&self) -> usize {
        self.capacity.saturating_sub(self.admitted.available_permits()).saturating_sub(self.running())
    }

    /// Passwords checked since the server started.
    pub fn checked(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }
}

/// An admitted sign-in, waiting for its turn.
pub struct Admission<'a> {
    checks: &'a PasswordChecks,
    _admitted: tokio::sync::SemaphorePermit<'a>,
}

impl<'a> Admission<'a> {
    /// Waits for one of the turns.
    pub async fn turn(self) -> Result<Turn<'a>, Busy> {
        let running = self.checks.running.acquire().await.map_err(|_| Busy)?;
        Ok(Turn { checks: self.checks, _admission: self, _running: running })
    }
}

/// A sign-in's turn: its storage statements and its hash run now, outside the storage slots.
pub struct Turn<'a> {
    checks: &'a PasswordChecks,
    _admission: Admission<'a>,
    _running: tokio::sync::SemaphorePermit<'a>,
}

impl Turn<'_> {
    /// Runs blocking work (a storage statement, a hash) on tokio's blocking pool, in this turn.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        tokio::task::spawn_blocking(f).await.map_err(|_| Busy)
    }

    /// Whether `password` matches the stored argon2 hash; with none (an unknown login) it is
    /// checked against a dummy hash, the same work, and never matches.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Busy> {
        let matches = self
            .run(move || match stored {
                Some(stored) => auth::verify_password(&password, &stored),
                None => {
                    let _ = auth::verify_password(&password, dummy_hash());
                    false
                }
            })
            .await?;
        self.checks.checked.fetch_add(1, Ordering::Relaxed);
        Ok(matches)
    }
}

/// An argon2id hash of a random password nobody knows, checked against when the login is
/// unknown so that both failures cost the same.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        auth::new_secret().ok().and_then(|secret| auth::hash_password(&secret).ok()).unwrap_or_default()
    })
}

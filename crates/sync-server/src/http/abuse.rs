//! Abuse limits kept in memory (no migration, per node): failed enrolment attempts per client
//! address and county-wide (past the county's budget attempts are slowed down, not refused),
//! failed sign-ins per client address, sync
//! budgets per device (rounds and reply bytes, token buckets), and live WebSocket connections
//! per device. Each refusal is the protocol's `rate_limited` error, with a retry-after. The tables are bounded, so a flood of new addresses cannot
//! grow memory without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use doorstep_core::ids::DeviceId;

/// The limits, from [`crate::config::Config`].
#[derive(Clone, Debug)]
pub struct AbuseLimits {
    /// Failed enrolment attempts one client address may make per window.
    pub enrol_failures_per_address: u32,
    /// Failed enrolment attempts from all addresses together per window before attempts are
    /// slowed down to `enrol_attempts_per_minute_over_limit`.
    pub enrol_failures_total: u32,
    /// The window over which failed attempts are counted.
    pub enrol_window: Duration,
    /// Live WebSocket connections one device may hold at once.
    pub connections_per_device: usize,
    /// Enrolment attempts let through per minute county-wide once the window's failures are
    /// used up.
    pub enrol_attempts_per_minute_over_limit: u32,
    /// Failed sign-ins one client address may make per `sign_in_window`.
    pub sign_in_failures_per_address: u32,
    /// The window over which failed sign-ins are counted.
    pub sign_in_window: Duration,
    /// Passwords hashed at once.
    pub password_checks_at_once: usize,
    /// Sign-ins that may wait for a password check.
    pub password_checks_waiting: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Sync rounds per device per minute, on average.
    pub sync_rounds_per_minute: u32,
    /// Sync rounds per device in a burst.
    pub sync_round_burst: u32,
    /// Reply bytes per device per minute, on average.
    pub sync_bytes_per_minute: u64,
    /// Reply bytes per device in a burst.
    pub sync_byte_burst: u64,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            enrol_failures_per_address: 10,
            enrol_failures_total: 1000,
            enrol_window: Duration::from_secs(600),
            connections_per_device: 4,
            enrol_attempts_per_minute_over_limit: 60,
            sign_in_failures_per_address: 50,
            sign_in_window: Duration::from_secs(600),
            password_checks_at_once: 2,
            password_checks_waiting: 32,
            trusted_proxies: Vec::new(),
            sync_rounds_per_minute: 60,
            sync_round_burst: 300,
            sync_bytes_per_minute: 64 * 1024 * 1024,
            sync_byte_burst: 512 * 1024 * 1024,
        }
    }
}

/// Most client addresses (and devices) remembered at once; past this the
/// oldest entries are dropped.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// The longest an enrolment attempt waits its turn once the county's failures are used up;
/// past it the attempt is refused with a retry-after.
pub const MAX_ENROL_WAIT: Duration = Duration::from_secs(30);

/// Failed attempts counted in fixed windows.
#[derive(Default)]
struct Window {
    started: Option<Instant>,
    failures: u32,
}

impl Window {
    fn current(&mut self, now: Instant, length: Duration) -> &mut u32 {
        if self.started.is_none_or(|s| now.duration_since(s) >= length) {
            self.started = Some(now);
            self.failures = 0;
        }
        &mut self.failures
    }

    /// Time until this window ends.
    fn left(&self, now: Instant, length: Duration) -> Duration {
        self.started.map_or(Duration::ZERO, |s| length.saturating_sub(now.duration_since(s)))
    }
}

/// A token bucket: `capacity` tokens, refilled at `per_sec`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Self { tokens: capacity, at: now }
    }

    fn refill(&mut self, now: Instant, capacity: f64, per_sec: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.at = now;
    }

    /// Time until the bucket holds `needed` tokens.
    fn wait_for(&self, needed: f64, per_sec: f64) -> Duration {
        Duration::from_secs_f64(((needed - self.tokens).max(0.0) / per_sec).min(86_400.0))
    }
}

/// One device's sync budget: rounds and reply bytes.
struct SyncBudget {
    rounds: Bucket,
    bytes: Bucket,
}

/// The server's abuse state: enrolment failures, sign-in failures, password checks, sync
/// budgets and live connections.
pub struct Abuse {
    limits: AbuseLimits,
    by_address: Mutex<HashMap<IpAddr, Window>>,
    total: Mutex<Window>,
    /// When the next enrolment attempt may pass once the county's failures are used up.
    enrol_next: Mutex<Option<Instant>>,
    sign_in_by_address: Mutex<HashMap<IpAddr, Window>>,
    /// One enrolment check at a time per client address, so its failures are counted before
    /// its next code is looked at.
    enrol_turns: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>,
    sync_budgets: Mutex<HashMap<DeviceId, SyncBudget>>,
    connections: Mutex<HashMap<DeviceId, usize>>,
    /// The password hasher, bounded.
    pub passwords: super::passwords::PasswordChecks,
}

/// Why a request was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Too many failed enrolment attempts from this address, or county-wide more than may
    /// wait; retry after the given time.
    #[error("too many failed enrolment attempts; wait and retry")]
    EnrolmentAttempts(Duration),
    /// Too many failed sign-ins from this address; retry after the given time.
    #[error("too many failed sign-ins from this address; wait and retry")]
    SignInAttempts(Duration),
    /// The device used up its sync budget; retry after the given time.
    #[error("too many sync rounds or bytes from this device; wait and retry")]
    SyncBudget(Duration),
    /// The device already holds the most live connections allowed.
    #[error("this device already holds {0} live connections")]
    Connections(usize),
}

impl Refusal {
    /// When to retry, in whole seconds (at least 1), if the refusal says.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Refusal::EnrolmentAttempts(d) | Refusal::SignInAttempts(d) | Refusal::SyncBudget(d) => {
                Some(u32::try_from(d.as_secs().saturating_add(1)).unwrap_or(u32::MAX))
            }
            Refusal::Connections(_) => None,
        }
    }
}

/// Keeps a table bounded: past [`MAX_TRACKED_ADDRESSES`] entries, drops the stale ones (or all).
fn bound<K: std::hash::Hash + Eq, V>(table: &mut HashMap<K, V>, key: &K, stale: impl Fn(&V) -> bool) {
    if table.len() >= MAX_TRACKED_ADDRESSES && !table.contains_key(key) {
        table.retain(|_, v| !stale(v));
        if table.len() >= MAX_TRACKED_ADDRESSES {
            table.clear();
        }
    }
}

impl Abuse {
    /// Fresh state under `limits`.
    pub fn new(limits: AbuseLimits) -> Self {
        let passwords = super::passwords::PasswordChecks::new(
            limits.password_checks_at_once,
            limits.password_checks_waiting,
        );
        Self {
            limits,
            by_address: Mutex::new(HashMap::new()),
            total: Mutex::new(Window::default()),
            enrol_next: Mutex::new(None),
            sign_in_by_address: Mutex::new(HashMap::new()),
            enrol_turns: Mutex::new(HashMap::new()),
            sync_budgets: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            passwords,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &AbuseLimits {
        &self.limits
    }

    /// May an enrolment attempt from `address` go ahead (checked before the code is)? `Ok`
    /// holds how long it must wait first: nothing while the county's failures in this window
    /// are under `enrol_failures_total`, and past that its turn at
    /// `enrol_attempts_per_minute_over_limit`, so a flood from many addresses is slowed down
    /// but a real code still gets through. An address past its own limit is refused, even with
    /// a right code.
    pub fn may_enrol(&self, address: Option<IpAddr>, now: Instant) -> Result<Duration, Refusal> {
        let window = self.limits.enrol_window;
        if let Some(address) = address {
            let mut table = lock(&self.by_address);
            if let Some(w) = table.get_mut(&address)
                && *w.current(now, window) >= self.limits.enrol_failures_per_address
            {
                return Err(Refusal::EnrolmentAttempts(w.left(now, window)));
            }
        }
        if *lock(&self.total).current(now, window) < self.limits.enrol_failures_total {
            return Ok(Duration::ZERO);
        }
        let interval = Duration::from_secs(60) / self.limits.enrol_attempts_per_minute_over_limit.max(1);
        let mut next = lock(&self.enrol_next);
        let turn = next.map_or(now, |n| n.max(now));
        let wait = turn.duration_since(now);
        if wait > MAX_ENROL_WAIT {
            return Err(Refusal::EnrolmentAttempts(wait));
        }
        *next = Some(turn + interval);
        Ok(wait)
    }

    /// Waits for `address`'s turn to have a code checked: one at a time per address, so
    /// parallel guesses cannot all pass [`Abuse::may_enrol`] before the first is counted (call
    /// `may_enrol` again in the turn). Other addresses do not wait; the turn ends when the
    /// guard drops.
    pub async fn enrol_turn(&self, address: Option<IpAddr>) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let address = address?;
        let turn = {
            let mut table = lock(&self.enrol_turns);
            // Turns nobody holds or waits for are dropped once the table is large.
            bound(&mut table, &address, |t| Arc::strong_count(t) == 1);
            Arc::clone(table.entry(address).or_default())
        };
        Some(turn.lock_owned().await)
    }

    /// The per-address check of [`Abuse::may_enrol`] alone (in the address's turn).
    pub fn recheck_enrol(&self, address: Option<IpAddr>, now: Instant) -> Result<(), Refusal> {
        let window = self.limits.enrol_window;
        let Some(address) = address else { return Ok(()) };
        let mut table = lock(&self.by_address);
        if let Some(w) = table.get_mut(&address)
            && *w.current(now, window) >= self.limits.enrol_failures_per_address
        {
            return Err(Refusal::EnrolmentAttempts(w.left(now, window)));
        }
        Ok(())
    }

    /// Counts a failed enrolment attempt (a wrong, used or expired code).
    pub fn enrol_failed(&self, address: Option<IpAddr>, now: Instant) {
        let window = self.limits.enrol_window;
        *lock(&self.total).current(now, window) += 1;
        let Some(address) = address else { return };
        let mut table = lock(&self.by_address);
        bound(&mut table, &address, |w| w.started.is_none_or(|s| now.duration_since(s) >= window));
        *table.entry(address).or_default().current(now, window) += 1;
    }

    /// May a sign-in from `address` go ahead (checked before anything else)?
    pub fn may_sign_in(&self, address: Option<IpAddr>, now: Instant) -> Result<(), Refusal> {
        let window = self.limits.sign_in_window;
        let Some(address) = address else { return Ok(()) };
        let mut table = lock(&self.sign_in_by_address);
        if let Some(w) = table.get_mut(&address)
            && *w.current(now, window) >= self.limits.sign_in_failures_per_address
        {
            return Err(Refusal::SignInAttempts(w.left(now, window)));
        }
        Ok(())
    }

    /// Counts a failed sign-in from `address`.
    pub fn sign_in_failed(&self, address: Option<IpAddr>, now: Instant) {
        let window = self.limits.sign_in_window;
        let Some(address) = address else { return };
        let mut table = lock(&self.sign_in_by_address);
        bound(&mut table, &address, |w| w.started.is_none_or(|s| now.duration_since(s) >= window));
        *table.entry(address).or_default().current(now, window) += 1;
    }

    /// Takes one sync round from `device`'s budget (refused while its byte budget is spent).
    pub fn sync_round(&self, device: DeviceId, now: Instant) -> Result<(), Refusal> {
        let l = &self.limits;
        let (round_cap, round_rate) =
            (f64::from(l.sync_round_burst), f64::from(l.sync_rounds_per_minute) / 60.0);
        let (byte_cap, byte_rate) = (l.sync_byte_burst as f64, l.sync_bytes_per_minute as f64 / 60.0);
        let mut table = lock(&self.sync_budgets);
        bound(&mut table, &device, |b| b.rounds.tokens >= round_cap && b.bytes.tokens >= byte_cap);
        let budget = table.entry(device).or_insert_with(|| SyncBudget {
            rounds: Bucket::full(round_cap, now),
            bytes: Bucket::full(byte_cap, now),
        });
        budget.rounds.refill(now, round_cap, round_rate);
        budget.bytes.refill(now, byte_cap, byte_rate);
        if budget.rounds.tokens < 1.0 || budget.bytes.tokens <= 0.0 {
            let wait = budget.rounds.wait_for(1.0, round_rate).max(budget.bytes.wait_for(1.0, byte_rate));
            return Err(Refusal::SyncBudget(wait));
        }
        budget.rounds.tokens -= 1.0;
        Ok(())
    }

    /// Charges `bytes` sent to `device` to its byte budget (which may go into debt: the next
    /// round waits until it is paid).
    pub fn sync_bytes(&self, device: DeviceId, bytes: usize) {
        if let Some(budget) = lock(&self.sync_budgets).get_mut(&device) {
            budget.bytes.tokens -= bytes as f64;
        }
    }

    /// Takes one of `device`'s live connection slots; the slot is given back when the
    /// returned guard drops.
    pub fn connect(self: &Arc<Self>, device: DeviceId) -> Result<ConnectionSlot, Refusal> {
        let mut table = lock(&self.connections);
        let held = table.entry(device).or_insert(0);
        if *held >= self.limits.connections_per_device {
            return Err(Refusal::Connections(*held));
        }
        *held += 1;
        Ok(ConnectionSlot { abuse: Arc::clone(self), device })
    }
}

/// A live connection's slot; dropping it frees the slot.
pub struct ConnectionSlot {
    abuse: Arc<Abuse>,
    device: DeviceId,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut table = lock(&self.abuse.connections);
        if let Some(held) = table.get_mut(&self.device) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                table.remove(&self.device);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AbuseLimits {
        AbuseLimits {
            enrol_failures_per_address: 2,
            enrol_failures_total: 5,
            enrol_window: Duration::from_secs(60),
            connections_per_device: 1,
            enrol_attempts_per_minute_over_limit: 6,
            sync_round_burst: 3,
            sync_rounds_per_minute: 60,
            sync_byte_burst: 1000,
            sync_bytes_per_minute: 60,
            ..AbuseLimits::default()
        }
    }

    #[test]
    fn failed_enrolments_are_limited_per_address_then_slowed_overall_and_windows_expire() {
        let abuse = Abuse::new(limits());
        let t0 = Instant::now();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..2 {
            assert_eq!(abuse.may_enrol(Some(a), t0), Ok(Duration::ZERO));
            abuse.enrol_failed(Some(a), t0);
        }
        assert!(matches!(abuse.may_enrol(Some(a), t0), Err(Refusal::EnrolmentAttempts(_))));
        assert_eq!(abuse.may_enrol(Some(b), t0), Ok(Duration::ZERO), "another address is not blocked");
        for _ in 0..3 {
            abuse.enrol_failed(Some(b), t0);
        }
        // County-wide past the budget: attempts take turns, 10 s apart, at most 30 s ahead.
        assert_eq!(abuse.may_enrol(None, t0), Ok(Duration::ZERO));
        assert_eq!(abuse.may_enrol(None, t0), Ok(Duration::from_secs(10)));
        assert_eq!(abuse.may_enrol(None, t0), Ok(Duration::from_secs(20)));
        assert_eq!(abuse.may_enrol(None, t0), Ok(Duration::from_secs(30)));
        assert!(matches!(abuse.may_enrol(None, t0), Err(Refusal::EnrolmentAttempts(_))));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(abuse.may_enrol(Some(a), later), Ok(Duration::ZERO), "a new window");
    }

    #[test]
    fn sync_rounds_and_bytes_are_budgeted_per_device() {
        let abuse = Abuse::new(limits());
        let t0 = Instant::now();
        let (a, b) = (DeviceId::new_random(), DeviceId::new_random());
        for _ in 0..3 {
            assert_eq!(abuse.sync_round(a, t0), Ok(()));
        }
        let Err(refusal) = abuse.sync_round(a, t0) else { panic!("a fourth round in a burst of three") };
        assert_eq!(refusal.retry_after_secs(), Some(2));
        assert_eq!(abuse.sync_round(b, t0), Ok(()), "another device has its own budget");
        abuse.sync_bytes(b, 1500);
        assert!(abuse.sync_round(b, t0).is_err(), "the byte budget is in debt");
        assert_eq!(abuse.sync_round(b, t0 + Duration::from_secs(600)), Ok(()), "paid back");
    }

    #[test]
    fn connection_slots_are_given_back_on_drop() {
        let abuse = Arc::new(Abuse::new(limits()));
        let device = DeviceId::new_random();
        let slot = abuse.connect(device).expect("first");
        assert_eq!(abuse.connect(device).err(), Some(Refusal::Connections(1)));
        drop(slot);
        assert!(abuse.connect(device).is_ok());
    }
}

//! Abuse limits kept in memory (no migration, per node): failed enrolment attempts per client
//! address and county-wide, and live WebSocket connections per device. Each refusal is the
//! protocol's `rate_limited` error. The tables are bounded, so a flood of new addresses cannot
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
    /// Failed enrolment attempts from all addresses together per window.
    pub enrol_failures_total: u32,
    /// The window over which failed attempts are counted.
    pub enrol_window: Duration,
    /// Live WebSocket connections one device may hold at once.
    pub connections_per_device: usize,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            enrol_failures_per_address: 10,
            enrol_failures_total: 1000,
            enrol_window: Duration::from_secs(600),
            connections_per_device: 4,
        }
    }
}

/// Most client addresses remembered at once; past this the oldest windows are dropped.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

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
}

/// The server's abuse state: enrolment failures and live connections.
pub struct Abuse {
    limits: AbuseLimits,
    by_address: Mutex<HashMap<IpAddr, Window>>,
    total: Mutex<Window>,
    connections: Mutex<HashMap<DeviceId, usize>>,
}

/// Why a request was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Too many failed enrolment attempts from this address or overall.
    #[error("too many failed enrolment attempts; wait and retry")]
    EnrolmentAttempts,
    /// The device already holds the most live connections allowed.
    #[error("this device already holds {0} live connections")]
    Connections(usize),
}

impl Abuse {
    /// Fresh state under `limits`.
    pub fn new(limits: AbuseLimits) -> Self {
        Self {
            limits,
            by_address: Mutex::new(HashMap::new()),
            total: Mutex::new(Window::default()),
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// May an enrolment attempt from `address` go ahead (checked before the code is)?
    pub fn may_enrol(&self, address: Option<IpAddr>, now: Instant) -> Result<(), Refusal> {
        let window = self.limits.enrol_window;
        if *lock(&self.total).current(now, window) >= self.limits.enrol_failures_total {
            return Err(Refusal::EnrolmentAttempts);
        }
        if let Some(address) = address {
            let mut table = lock(&self.by_address);
            if let Some(w) = table.get_mut(&address)
                && *w.current(now, window) >= self.limits.enrol_failures_per_address
            {
                return Err(Refusal::EnrolmentAttempts);
            }
        }
        Ok(())
    }

    /// Counts a failed enrolment attempt (a wrong, used or expired code).
    pub fn enrol_failed(&self, address: Option<IpAddr>, now: Instant) {
        let window = self.limits.enrol_window;
        *lock(&self.total).current(now, window) += 1;
        let Some(address) = address else { return };
        let mut table = lock(&self.by_address);
        if table.len() >= MAX_TRACKED_ADDRESSES && !table.contains_key(&address) {
            table.retain(|_, w| w.started.is_some_and(|s| now.duration_since(s) < window));
            if table.len() >= MAX_TRACKED_ADDRESSES {
                table.clear();
            }
        }
        *table.entry(address).or_default().current(now, window) += 1;
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
        }
    }

    #[test]
    fn failed_enrolments_are_limited_per_address_then_overall_and_windows_expire() {
        let abuse = Abuse::new(limits());
        let t0 = Instant::now();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..2 {
            assert_eq!(abuse.may_enrol(Some(a), t0), Ok(()));
            abuse.enrol_failed(Some(a), t0);
        }
        assert_eq!(abuse.may_enrol(Some(a), t0), Err(Refusal::EnrolmentAttempts));
        assert_eq!(abuse.may_enrol(Some(b), t0), Ok(()), "another address is not blocked");
        for _ in 0..3 {
            abuse.enrol_failed(Some(b), t0);
        }
        assert_eq!(abuse.may_enrol(None, t0), Err(Refusal::EnrolmentAttempts), "county-wide limit");
        let later = t0 + Duration::from_secs(61);
        assert_eq!(abuse.may_enrol(Some(a), later), Ok(()), "a new window");
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

//! A throwaway PostgreSQL database per test: created on the server that `scripts/test` starts,
//! dropped when the last holder lets go. A test that needs PostgreSQL and cannot reach it fails
//! with the reason; it never skips.

use postgres::{Client, NoTls};

/// Where the test databases are created: `DOORSTEP_TEST_PG`, or the local role `scripts/test`
/// creates.
pub fn admin_url() -> String {
    std::env::var("DOORSTEP_TEST_PG")
        .unwrap_or_else(|_| "postgres://doorstep:doorstep@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

/// Runs `f` on a thread of its own: the `postgres` client cannot block inside an async test.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
}

fn connect_admin() -> Client {
    let url = admin_url();
    Client::connect(&url, NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}: {e}\n\
             Run `scripts/test` (it starts PostgreSQL 15 and creates the role), or set DOORSTEP_TEST_PG."
        )
    })
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    pub fn create() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("random");
        let name = format!("doorstep_test_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        off_runtime(|| connect_admin().batch_execute(&format!("CREATE DATABASE {name}")))
            .expect("create test database");
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        Self { url: format!("{base}/{name}"), name }
    }

    /// Runs `f` with a plain connection to it (on a thread of its own).
    pub fn with<T: Send>(&self, f: impl FnOnce(&mut Client) -> T + Send) -> T {
        off_runtime(|| f(&mut Client::connect(&self.url, NoTls).expect("connect to test database")))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // FORCE ends the sessions of servers killed a moment ago.
        let name = &self.name;
        let _ = off_runtime(|| {
            connect_admin().batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        });
    }
}

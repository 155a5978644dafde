//! The server under load: a real `doorstep-server` process on 127.0.0.1 over a temporary data
//! directory, on SQLite or on a throwaway PostgreSQL database, and what `/proc` says it spent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use doorstep_server::storage::Storage;
use doorstep_server::storage::postgresql::PostgresStorage;
use doorstep_server::storage::sqlite::SqliteStorage;

/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server stores.
pub enum Backend {
    /// One SQLite file in the data directory.
    Sqlite,
    /// A database created for this run on the PostgreSQL server of `admin_url`, dropped at
    /// the end.
    Postgres(ThrowawayDatabase),
}

impl Backend {
    /// The backend's name as the flag spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Opens the server's storage directly (SQLite's WAL allows it beside the running server).
    pub fn storage(&self, data_dir: &Path) -> Result<Box<dyn Storage>> {
        Ok(match self {
            Backend::Sqlite => Box::new(SqliteStorage::open(data_dir)?),
            Backend::Postgres(db) => Box::new(PostgresStorage::connect(&db.url, 4)?),
        })
    }
}

/// A PostgreSQL database that exists for one run: created on start, dropped (`WITH (FORCE)`)
/// when this is dropped.
pub struct ThrowawayDatabase {
    /// Its URL.
    pub url: String,
    admin_url: String,
    name: String,
}

impl ThrowawayDatabase {
    /// Creates `doorstep_load_<random>` with the admin URL's role (which needs `CREATEDB`).
    pub fn create(admin_url: &str) -> Result<Self> {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).map_err(|e| anyhow!("randomness: {e}"))?;
        // Not `doorstep_test_…`: `scripts/postgres` drops those, maybe in the middle of a run.
        let name = format!("doorstep_load_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).with_context(|| {
            format!("PostgreSQL is not reachable at {admin_url} (scripts/postgres starts it)")
        })?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
        Ok(Self { url: format!("{base}/{name}"), admin_url: admin_url.to_owned(), name })
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.admin_url, postgres::NoTls).and_then(|mut admin| {
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the load database {}: {e}", self.name);
        }
    }
}

/// A running server process (`doorstep-server`, or the baseline's), killed when dropped.
pub struct ServerProcess {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `binary serve` on a free port of 127.0.0.1 over `data_dir` (and the database).
    pub fn start(binary: &Path, data_dir: &Path, backend: &Backend) -> Result<Self> {
        let mut command = Command::new(binary);
        command.arg("--data-dir").arg(data_dir);
        if let Backend::Postgres(db) = backend {
            command.args(["--database", &db.url]);
        }
        command.args(["serve", "--listen", "127.0.0.1:0"]).env("RUST_LOG", "warn");
        Self::spawn(command, None).with_context(|| {
            format!(
                "starting {} (build it with `cargo build --release -p doorstep-server`)",
                binary.display()
            )
        })
    }

    /// Starts `command`, writes `input` (if any) to its stdin and closes it, and waits for the
    /// process to print `listening on http://…` on stdout.
    pub fn spawn(mut command: Command, input: Option<Vec<u8>>) -> Result<Self> {
        let mut child = command
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&input);
            });
        }
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (found, address) = mpsc::channel();
        // Reads the address, then keeps draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(tx) = found.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
            }
        });
        let mut server = Self { url: String::new(), child };
        server.url = match address.recv_timeout(START_TIMEOUT) {
            Ok(url) if url.starts_with("http://") => url,
            Ok(other) => bail!("the server printed an address I cannot use: {other:?}"),
            Err(_) => bail!("the server did not print its address within {START_TIMEOUT:?}"),
        };
        Ok(server)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the process has used so far, from `/proc/<pid>/stat`.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds_of(&PathBuf::from(format!("/proc/{}/stat", self.pid())))
    }

    /// Peak resident set size in bytes (`VmHWM` of `/proc/<pid>/status`).
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        self.status_bytes("VmHWM:")
    }

    /// Resident set size now, in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn current_rss_bytes(&self) -> Result<u64> {
        self.status_bytes("VmRSS:")
    }

    fn status_bytes(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no {field} in /proc/{}/status", self.pid()))?;
        Ok(kb * 1024)
    }

    /// Resets the peak RSS to the current RSS (`/proc/<pid>/clear_refs` ← 5), so a phase's
    /// peak excludes the set-up before it. Best effort: older kernels lack it.
    pub fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds of this process (the load generator: the simulated phones).
pub fn own_cpu_seconds() -> Result<f64> {
    cpu_seconds_of(Path::new("/proc/self/stat"))
}

/// `utime + stime` of a `/proc/…/stat` file, in seconds.
fn cpu_seconds_of(stat: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(stat).with_context(|| format!("reading {}", stat.display()))?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let after =
        text.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| anyhow!("bad {}", stat.display()))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime is field 14 and stime field 15 of the whole line: 11 and 12 after the state.
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else { bail!("bad {}", stat.display()) };
    Ok((user + system) as f64 / clock_ticks_per_second())
}

/// `getconf CLK_TCK`, 100 (Linux's value on x86-64 and arm64) if that fails.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The machine's load average (1, 5, 15 minutes), for the report.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

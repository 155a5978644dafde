//! Test support: a real `doorstep-server` process on 127.0.0.1 over a temporary data directory,
//! with helpers to set up a county and devices.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use doorstep_client::Client;
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::{Address, NewHousehold, NewResident, Sex};
use doorstep_core::store::Replica;
use doorstep_core::time::Timestamp;
use doorstep_server::auth;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use doorstep_server::storage::postgresql::PostgresStorage;
use doorstep_server::storage::sqlite::SqliteStorage;

pub mod pg;
pub mod proxy;
pub use pg::TestDatabase;

/// The server binary built for these tests.
pub const SERVER: &str = env!("CARGO_BIN_EXE_doorstep-server");

/// A running server process.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub url: String,
    /// The PostgreSQL database it runs on; `None`: SQLite in `dir`.
    pub database: Option<std::sync::Arc<TestDatabase>>,
    child: Child,
}

/// What a killed server leaves behind, to start it again on the same data.
pub struct Stopped {
    pub dir: tempfile::TempDir,
    pub database: Option<std::sync::Arc<TestDatabase>>,
}

/// The backend the suite runs on: `DOORSTEP_TEST_BACKEND=postgres` runs every server of a test
/// file on a fresh PostgreSQL database (see `scripts/test`); anything else, SQLite.
pub fn backend_database() -> Option<std::sync::Arc<TestDatabase>> {
    match std::env::var("DOORSTEP_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(std::sync::Arc::new(TestDatabase::create())),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("DOORSTEP_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
}

impl TestServer {
    /// Starts a server on a free port over fresh data (on the backend the suite runs on).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::launch(dir, backend_database(), &[])
    }

    /// Starts a SQLite server over an existing data directory.
    pub fn start_in(dir: tempfile::TempDir) -> Self {
        Self::launch(dir, None, &[])
    }

    /// Starts a server again on what a killed one left.
    pub fn restart(stopped: Stopped) -> Self {
        Self::launch(stopped.dir, stopped.database, &[])
    }

    /// Starts a server again on what a killed one left, with extra `serve` flags.
    pub fn restart_with(stopped: Stopped, extra: &[&str]) -> Self {
        Self::launch(stopped.dir, stopped.database, extra)
    }

    /// Starts a server on a PostgreSQL database (another node when one already runs on it).
    pub fn start_on(database: std::sync::Arc<TestDatabase>) -> Self {
        Self::launch(tempfile::tempdir().expect("tempdir"), Some(database), &[])
    }

    /// Starts a server with extra `serve` flags.
    pub fn start_with(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::launch(dir, backend_database(), extra)
    }

    /// Starts a server again on what a stopped one left, running as the unprivileged user
    /// `nobody` (through `setpriv`, which execs the server, so killing it kills the server): the
    /// operating system's file permissions then apply to it, as they do not to root.
    pub fn restart_as_nobody(stopped: Stopped) -> Self {
        Self::launch_with(stopped.dir, stopped.database, &[], true)
    }

    fn launch(
        dir: tempfile::TempDir,
        database: Option<std::sync::Arc<TestDatabase>>,
        extra: &[&str],
    ) -> Self {
        Self::launch_with(dir, database, extra, false)
    }

    fn launch_with(
        dir: tempfile::TempDir,
        database: Option<std::sync::Arc<TestDatabase>>,
        extra: &[&str],
        as_nobody: bool,
    ) -> Self {
        let mut command = if as_nobody {
            let mut setpriv = Command::new("setpriv");
            setpriv.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", SERVER]);
            setpriv
        } else {
            Command::new(SERVER)
        };
        command.arg("--data-dir").arg(dir.path());
        if let Some(db) = &database {
            command.args(["--database", &db.url]);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start doorstep-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut url = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("server output");
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = Some(rest.split_whitespace().next().expect("address").to_owned());
                break;
            }
        }
        let url = url.expect("the server printed its address");
        Self { dir, url, database, child }
    }

    /// Starts a server whose replies are cut into pages of about `page_bytes`.
    pub fn start_with_pages(page_bytes: usize) -> Self {
        let config_dir = tempfile::tempdir().expect("tempdir");
        let config = config_dir.path().join("pages.toml");
        std::fs::write(&config, format!("page_bytes = {page_bytes}\n")).expect("config");
        // The config is read at start-up, so its directory may go when this returns.
        Self::start_with(tempfile::tempdir().expect("tempdir"), &["--config", config.to_str().expect("path")])
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and returns its data.
    pub fn kill(mut self) -> Stopped {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        let dir = tempfile::tempdir().expect("placeholder");
        Stopped { dir: std::mem::replace(&mut self.dir, dir), database: self.database.take() }
    }

    /// Sends SIGTERM (what systemd and rolling restarts send) and waits, at most 60 s, for
    /// the process to exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        assert!(status.success(), "signal sent");
        let mut child =
            std::mem::replace(&mut self.child, Command::new("true").spawn().expect("placeholder process"));
        let (done, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait().map(|s| s.success()).unwrap_or(false));
        });
        exited.recv_timeout(std::time::Duration::from_secs(60)).expect("the server exits after SIGTERM")
    }

    /// Direct access to the server's database (SQLite's WAL allows it beside the running
    /// server; PostgreSQL is shared anyway).
    pub fn storage(&self) -> Box<dyn Storage> {
        match &self.database {
            Some(db) => Box::new(PostgresStorage::connect(&db.url, 4).expect("open server database")),
            None => Box::new(SqliteStorage::open(self.dir.path()).expect("open server database")),
        }
    }

    /// A client for this server.
    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// Runs an admin command of the server binary (on this server's data) and returns its
    /// standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        match &self.database {
            Some(db) => {
                let mut all = vec!["--database", db.url.as_str()];
                all.extend_from_slice(args);
                admin(self.dir.path(), &all)
            }
            None => admin(self.dir.path(), args),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `doorstep-server --data-dir DIR ARGS…` and returns its standard output.
pub fn admin(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(SERVER).arg("--data-dir").arg(dir).args(args).output().expect("run admin command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// An enrolment code for a member, created through storage.
pub fn code_for(storage: &dyn Storage, member: MemberId) -> String {
    let code = auth::new_enrolment_code().expect("random");
    let hash = auth::hash_secret(&auth::normalize_code(&code));
    let now = doorstep_server::http::now();
    assert!(storage.create_enrolment_code(member, &hash, now, now.plus_hours(1)).expect("code"));
    code
}

/// A member with a role and grids.
pub fn member(storage: &dyn Storage, name: &str, role: Role, grids: &[GridId]) -> MemberId {
    let id = storage.create_member(name, role, None, doorstep_server::http::now()).expect("member");
    for grid in grids {
        storage.set_member_grid(id, *grid, true).expect("assign");
    }
    id
}

/// A device: a replica file in `dir`, enrolled for `member`.
pub async fn device(server: &TestServer, dir: &Path, name: &str, member: MemberId) -> Replica {
    let mut replica = Replica::open(dir.join(format!("{name}.db"))).expect("replica");
    let code = code_for(server.storage().as_ref(), member);
    server.client().enrol(&mut replica, &code, name).await.expect("enrol");
    replica
}

/// A household to register.
pub fn household(grid: GridId, room: &str, resident: &str) -> NewHousehold {
    NewHousehold {
        address: Address {
            community: "幸福社区".into(),
            grid,
            building: "3栋".into(),
            unit: "1单元".into(),
            room: room.into(),
        },
        residents: vec![NewResident {
            name: resident.into(),
            sex: Sex::Female,
            birth_year: Some(1950),
            phone: String::new(),
            tags: vec![],
        }],
        notes: String::new(),
    }
}

/// A fixed time for tests (the server never trusts device times anyway).
pub fn t(n: i64) -> Timestamp {
    Timestamp(1_780_000_000_000 + n * 60_000)
}

/// A fresh temporary directory for device files.
pub fn devices_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Path helper.
pub fn path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}

/// The value of cookie `name` a response sets.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    })
}

/// Signs in to the dashboard; returns the session's cookie header.
pub async fn sign_in(base: &str, login: &str, password: &str) -> String {
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = http.get(format!("{base}/dashboard/sign-in")).send().await.expect("form");
    let pre = set_cookie(&form, "dsk_pre").expect("pre-session cookie");
    let body = form.text().await.expect("body");
    let start = body.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    let csrf = body[start..].split('"').next().expect("value").to_owned();
    let answer = http
        .post(format!("{base}/dashboard/sign-in"))
        .header("cookie", format!("dsk_pre={pre}"))
        .form(&[("login", login), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .expect("sign in");
    let session = set_cookie(&answer, "dsk_session").expect("signed in");
    format!("dsk_session={session}")
}

/// A dashboard page as the signed-in `cookie` sees it; it must answer 2xx.
pub async fn get(cookie: &str, url: &str) -> String {
    let response = reqwest::Client::new().get(url).header("cookie", cookie).send().await.expect("page");
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.text().await.expect("body")
}

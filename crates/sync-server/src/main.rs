//! `doorstep-server`: run the relay, or administer it from the command line.
//! Administrator messages are printed in Simplified Chinese and English.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use doorstep_core::ids::{Code, DeviceId, GridId, MemberId};
use doorstep_server::config::Config;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use doorstep_server::storage::accounts;
use doorstep_server::storage::dashboard::AccountCreated;
use doorstep_server::storage::sqlite::SqliteStorage;
use doorstep_server::storage::transfer;
use doorstep_server::{auth, demo, http, import};

#[derive(Parser)]
#[command(
    name = "doorstep-server",
    version,
    about = "Doorstep county relay server / Doorstep 县级同步服务器"
)]
struct Cli {
    /// Data directory (holds doorstep.db).
    #[arg(long, global = true, env = "DOORSTEP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file.
    #[arg(long, global = true, env = "DOORSTEP_CONFIG")]
    config: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:password@host:5432/db) instead of SQLite in the data
    /// directory. 使用 PostgreSQL 数据库（多节点部署）。
    #[arg(long, global = true, env = "DOORSTEP_DATABASE")]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every command but `migrate` runs on the configured storage.
    #[command(flatten)]
    OnStorage(StorageCommand),
    /// Copy a county from a SQLite data directory into PostgreSQL, then verify the copy.
    /// 从 SQLite 迁移到 PostgreSQL 并校验。
    Migrate {
        /// The SQLite data directory (holds doorstep.db).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL URL.
        #[arg(long)]
        to: String,
        /// Overwrite a target that already holds data.
        #[arg(long)]
        replace: bool,
    },
}

/// The commands that run on the configured storage (opened once, before the command runs).
#[derive(Subcommand)]
enum StorageCommand {
    /// Run the server. 运行服务器。
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, env = "DOORSTEP_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Fill an empty database with the demo county first.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Run the server with the demo county (same as `serve --demo`). 以演示数据运行。
    Demo {
        /// Address to listen on.
        #[arg(long, env = "DOORSTEP_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Grids. 网格管理。
    #[command(subcommand)]
    Grid(GridCommand),
    /// Members and roles. 人员与角色。
    #[command(subcommand)]
    Member(MemberCommand),
    /// Create a single-use enrolment code for a member's device. 生成设备注册码。
    EnrolCode {
        /// The member.
        #[arg(long)]
        member: MemberId,
        /// Hours until the code expires.
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
    /// Devices. 设备管理。
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Write a consistent backup of the configured storage (SQLite or PostgreSQL) to a new file.
    /// 备份到文件。
    Backup {
        /// The backup file to create (a Doorstep SQLite database; must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup file into the configured storage (stop the servers first).
    /// 从备份文件恢复（请先停止服务器）。
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Overwrite storage that already holds data.
        #[arg(long)]
        replace: bool,
    },
    /// Dashboard staff accounts. 工作台账号。
    #[command(subcommand)]
    Account(AccountCommand),
    /// Read every stored document with the field rules and readers uploads are checked with,
    /// and list those that cannot be read in full (exit code 1 if any). Changes nothing.
    /// 检查所有文档能否完整读取。
    Check,
    /// Import households from a CSV file, with a per-row report. 从 CSV 导入住户。
    ImportHouseholds {
        /// The CSV file.
        #[arg(long)]
        file: PathBuf,
    },
}

/// HTTPS with rustls: both or neither.
#[derive(clap::Args)]
struct TlsArgs {
    /// PEM certificate chain.
    #[arg(long, env = "DOORSTEP_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "DOORSTEP_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum GridCommand {
    /// Add a grid.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        community: String,
        #[arg(long, default_value = "")]
        street: String,
    },
    /// List grids.
    List,
    /// Hand a grid from one worker to another in one operation: the old worker's devices
    /// upload their changes, then purge it; the new worker's devices receive it.
    HandOver {
        #[arg(long)]
        grid: GridId,
        /// The member who holds the grid now.
        #[arg(long)]
        from: MemberId,
        /// The member who takes it over.
        #[arg(long)]
        to: MemberId,
    },
    /// Hand some households over: each household and its requests move to the new worker's
    /// grid; the old worker's devices upload their changes, then purge them.
    HandOverHouseholds {
        /// The grid they move to (one of the new worker's).
        #[arg(long)]
        to_grid: GridId,
        /// A household to hand over (repeat the flag).
        #[arg(long = "household", required = true)]
        households: Vec<doorstep_core::ids::HouseholdId>,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Add a member.
    Add {
        #[arg(long)]
        name: String,
        /// grid_worker, volunteer, department_staff, supervisor or admin.
        #[arg(long)]
        role: Role,
        /// Department code (department staff).
        #[arg(long)]
        department: Option<Code>,
        /// Grids to assign (repeat the flag).
        #[arg(long = "grid")]
        grids: Vec<GridId>,
    },
    /// Assign a grid to a member.
    Assign {
        #[arg(long)]
        member: MemberId,
        #[arg(long)]
        grid: GridId,
    },
    /// Take a grid from a member (their devices purge it on next sync).
    Unassign {
        #[arg(long)]
        member: MemberId,
        #[arg(long)]
        grid: GridId,
    },
    /// List members.
    List,
    /// Give a member another role (their devices and dashboard sessions follow at once).
    /// 修改人员角色。
    SetRole {
        #[arg(long)]
        member: MemberId,
        /// grid_worker, volunteer, department_staff, supervisor or admin.
        #[arg(long)]
        role: Role,
        /// Department code (department staff).
        #[arg(long)]
        department: Option<Code>,
    },
    /// Disable a member at once: their devices are revoked (open connections close), their
    /// dashboard accounts disabled and signed out, their unused enrolment codes deleted.
    /// 停用人员（立即吊销其设备、停用其工作台账号）。
    Disable {
        #[arg(long)]
        member: MemberId,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create a dashboard account for a member (its scope is the member's). The password is read
    /// from DOORSTEP_PASSWORD or, if unset, from the first line of standard input.
    Add {
        /// The member the account signs in as.
        #[arg(long)]
        member: MemberId,
        /// The login name.
        #[arg(long)]
        login: String,
    },
    /// List dashboard accounts.
    List,
    /// Disable an account: it cannot sign in and its sessions end at once. 停用账号。
    Disable {
        #[arg(long)]
        login: String,
    },
    /// Enable a disabled account again. 启用账号。
    Enable {
        #[arg(long)]
        login: String,
    },
    /// Set a new password (read like `add`'s); the account's sessions end and its lock clears.
    /// 重置密码。
    ResetPassword {
        #[arg(long)]
        login: String,
    },
    /// Clear an account's failed sign-ins and lock. 解除锁定。
    Unlock {
        #[arg(long)]
        login: String,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// List devices.
    List,
    /// Revoke a device at once (it is told to delete its data).
    Revoke {
        #[arg(long)]
        device: DeviceId,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &cli.database {
        config.database = Some(url.clone());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| config.log.as_str().into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let command = match cli.command {
        Command::Migrate { from, to, replace } => {
            // Only the two named databases are opened.
            let source = existing_sqlite(&from.join(doorstep_server::storage::sqlite::DATABASE_FILE))?;
            let target = Config { database: Some(to), ..config }.open_storage()?;
            return copy_and_verify(&source, target.as_ref(), replace);
        }
        Command::OnStorage(command) => command,
    };
    let storage = config.open_storage()?;
    let now = http::now();
    match command {
        StorageCommand::Serve { listen, demo, tls } => run(config.with_tls(tls), storage, listen, demo),
        StorageCommand::Demo { listen, tls } => run(config.with_tls(tls), storage, listen, true),
        StorageCommand::Grid(GridCommand::Add { name, community, street }) => {
            let id = storage.create_grid(&name, &community, &street)?;
            println!("已创建网格 / grid created: {id}  {name}");
            Ok(())
        }
        StorageCommand::Grid(GridCommand::List) => {
            for g in storage.grids()? {
                println!("{}  {}  {}  {}", g.id, g.street, g.community, g.name);
            }
            Ok(())
        }
        StorageCommand::Grid(GridCommand::HandOver { grid, from, to }) => {
            if storage.hand_over_grid(grid, from, to, now)? {
                println!(
                    "已交接网格 / grid handed over: {grid} {from} → {to}\n原设备下次同步时先上传再清除，新设备下次同步时收到 / the old devices upload, then purge it on their next sync; the new devices receive it"
                );
                Ok(())
            } else {
                bail!(
                    "原网格员未持有此网格，或接手人员不存在 / the first member does not hold that grid, or the second is unknown"
                )
            }
        }
        StorageCommand::Grid(GridCommand::HandOverHouseholds { to_grid, households }) => {
            let moved =
                doorstep_server::handover::hand_over_households(storage.as_ref(), &households, to_grid, now)?;
            println!(
                "已交接 {} 户、{} 条诉求 / households handed over: {}, requests: {} → {to_grid}",
                moved.households, moved.requests, moved.households, moved.requests
            );
            Ok(())
        }
        StorageCommand::Member(MemberCommand::Add { name, role, department, grids }) => {
            if role == Role::DepartmentStaff && department.is_none() {
                bail!("部门工作人员需要 --department / department staff need --department");
            }
            let id = storage.create_member(&name, role, department.as_ref(), now)?;
            for grid in grids {
                storage.set_member_grid(id, grid, true)?;
            }
            println!("已添加人员 / member added: {id}  {name} ({} / {role})", role.label_zh());
            Ok(())
        }
        StorageCommand::Member(MemberCommand::Assign { member, grid }) => {
            storage.set_member_grid(member, grid, true)?;
            println!("已分配网格 / grid assigned: {grid} → {member}");
            Ok(())
        }
        StorageCommand::Member(MemberCommand::Unassign { member, grid }) => {
            if storage.set_member_grid(member, grid, false)? {
                println!(
                    "已移除网格，设备下次同步时清除数据 / grid removed; devices purge it on their next sync"
                );
            } else {
                println!("该人员未分配此网格 / that member did not hold that grid");
            }
            Ok(())
        }
        StorageCommand::Member(MemberCommand::List) => {
            let disabled = accounts::disabled_members(storage.as_ref())?;
            for m in storage.members()? {
                let off = if disabled.contains(&m.id) { "  disabled/已停用" } else { "" };
                println!("{}  {}  {}  {} grid(s){off}", m.id, m.role, m.name, m.grids.len());
            }
            Ok(())
        }
        StorageCommand::Member(MemberCommand::SetRole { member, role, department }) => {
            if role == Role::DepartmentStaff && department.is_none() {
                bail!("部门工作人员需要 --department / department staff need --department");
            }
            let department = department.filter(|_| role == Role::DepartmentStaff);
            if accounts::set_member_role(storage.as_ref(), member, role, department.as_ref(), now)? {
                println!(
                    "角色已修改，设备和工作台立即按新角色 / role changed, devices and dashboard follow at once: {member} → {} / {role}",
                    role.label_zh()
                );
                Ok(())
            } else {
                bail!("未找到有效人员 / no enabled member: {member}")
            }
        }
        StorageCommand::Member(MemberCommand::Disable { member }) => {
            match accounts::disable_member(storage.as_ref(), member, now)? {
                Some(devices) => {
                    println!(
                        "人员已停用：吊销 {n} 台设备，工作台账号已停用 / member disabled: {n} device(s) revoked, dashboard accounts disabled: {member}",
                        n = devices.len()
                    );
                    Ok(())
                }
                None => bail!("未找到有效人员 / no enabled member: {member}"),
            }
        }
        StorageCommand::EnrolCode { member, hours } => {
            let code = auth::new_enrolment_code()?;
            let hash = auth::hash_secret(&auth::normalize_code(&code));
            if !storage.create_enrolment_code(member, &hash, now, now.plus_hours(hours))? {
                bail!("未找到该人员 / no such member: {member}");
            }
            println!(
                "注册码（仅显示一次，{hours} 小时内有效，只能使用一次）/ enrolment code (shown once, valid {hours} h, single use):"
            );
            println!("{code}");
            Ok(())
        }
        StorageCommand::Device(DeviceCommand::List) => {
            for d in storage.devices()? {
                let state = if d.revoked_at.is_some() { "revoked/已吊销" } else { "active/有效" };
                println!("{}  {}  {}  {state}", d.id, d.member_id, d.name);
            }
            Ok(())
        }
        StorageCommand::Device(DeviceCommand::Revoke { device }) => {
            if storage.revoke_device(device, now)? {
                println!("设备已吊销，立即生效 / device revoked, effective at once: {device}");
            } else {
                println!("未找到有效设备 / no active device with that id: {device}");
            }
            Ok(())
        }
        StorageCommand::Backup { to } => {
            if to.exists() {
                bail!(
                    "备份文件已存在，未覆盖 / the backup file already exists; not overwritten: {}",
                    to.display()
                );
            }
            // Written under a temporary name and renamed once verified: a failed run leaves no
            // file behind, and a run killed half-way leaves only its temporary file, which the
            // next run removes.
            let partial = partial_path(&to);
            remove_sqlite_files(&partial);
            let made = (|| {
                let target = SqliteStorage::open_file(&partial)
                    .with_context(|| format!("无法创建备份文件 / cannot create {}", partial.display()))?;
                copy_and_verify(storage.as_ref(), &target, false)
                // The target is closed here, its write-ahead log folded into the file.
            })();
            match made {
                Ok(()) => std::fs::rename(&partial, &to)
                    .with_context(|| format!("无法写入备份文件 / cannot write {}", to.display())),
                Err(e) => {
                    remove_sqlite_files(&partial);
                    Err(e)
                }
            }
        }
        StorageCommand::Restore { from, replace } => {
            let source = existing_sqlite(&from)?;
            copy_and_verify(&source, storage.as_ref(), replace)
        }
        StorageCommand::Account(AccountCommand::Add { member, login }) => {
            let login = login.trim();
            if login.is_empty() || login.len() > 64 {
                bail!("账号需为 1–64 个字符 / the login needs 1–64 characters");
            }
            let hash = new_password_hash(login)?;
            match storage.create_staff_account(member, login, &hash, now)? {
                AccountCreated::Created(_) => {
                    println!("已创建工作台账号 / dashboard account created: {login} → {member}");
                    Ok(())
                }
                AccountCreated::LoginTaken => bail!("账号已存在 / that login is taken: {login}"),
                AccountCreated::NoSuchMember => bail!("未找到该人员 / no such member: {member}"),
            }
        }
        StorageCommand::Account(AccountCommand::List) => {
            let disabled = accounts::disabled_logins(storage.as_ref())?;
            for a in storage.staff_accounts()? {
                let locked = if a.locked_until.is_some_and(|t| t > now) { "  locked/已锁定" } else { "" };
                let off = if disabled.contains(&a.login) { "  disabled/已停用" } else { "" };
                println!("{}  {}{locked}{off}", a.login, a.member);
            }
            Ok(())
        }
        StorageCommand::Account(AccountCommand::Disable { login }) => {
            if accounts::set_account_disabled(storage.as_ref(), &login, true, now)? {
                println!(
                    "账号已停用，登录已立即失效 / account disabled, its sessions ended at once: {login}"
                );
                Ok(())
            } else {
                bail!("未找到有效账号 / no enabled account with that login: {login}")
            }
        }
        StorageCommand::Account(AccountCommand::Enable { login }) => {
            if accounts::set_account_disabled(storage.as_ref(), &login, false, now)? {
                println!("账号已启用 / account enabled: {login}");
                Ok(())
            } else {
                bail!("未找到已停用的账号 / no disabled account with that login: {login}")
            }
        }
        StorageCommand::Account(AccountCommand::ResetPassword { login }) => {
            let hash = new_password_hash(&login)?;
            if accounts::set_password(storage.as_ref(), &login, &hash, None, now)? {
                println!(
                    "密码已重置，该账号的登录已全部退出 / password reset; every session of the account ended: {login}"
                );
                Ok(())
            } else {
                bail!("未找到该账号 / no account with that login: {login}")
            }
        }
        StorageCommand::Account(AccountCommand::Unlock { login }) => {
            if accounts::unlock_account(storage.as_ref(), &login, now)? {
                println!("已解除锁定 / account unlocked: {login}");
                Ok(())
            } else {
                bail!("未找到该账号 / no account with that login: {login}")
            }
        }
        StorageCommand::Check => {
            let report = doorstep_server::check::check_all(storage.as_ref())?;
            for bad in &report.unreadable {
                println!("无法完整读取 / cannot be read in full: {}  {}", bad.id, bad.reason);
            }
            let (checked, bad) = (report.documents, report.unreadable.len());
            if bad > 0 {
                bail!(
                    "检查了 {checked} 份文档，{bad} 份无法完整读取 / checked {checked} documents, {bad} cannot be read in full"
                );
            }
            println!(
                "检查了 {checked} 份文档，全部可完整读取 / checked {checked} documents, all read in full"
            );
            Ok(())
        }
        StorageCommand::ImportHouseholds { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("无法读取 / cannot read {}", file.display()))?;
            let admin = storage.members()?.into_iter().find(|m| m.role == Role::Admin).map(|m| m.id);
            let report =
                import::import_csv(storage.as_ref(), &text, admin.unwrap_or_else(MemberId::new_random), now)?;
            println!(
                "已导入 {} 户、{} 人；拒绝 {} 行 / imported {} households, {} residents; rejected {} rows",
                report.households,
                report.residents,
                report.rejected.len(),
                report.households,
                report.residents,
                report.rejected.len()
            );
            for row in &report.rejected {
                println!("  第 {} 行 / line {}: {}", row.line, row.line, row.reason);
            }
            Ok(())
        }
    }
}

/// Reads a new password from DOORSTEP_PASSWORD or, if unset, the first line of standard input,
/// checks it against the password policy the dashboard uses too, and hashes it.
fn new_password_hash(login: &str) -> anyhow::Result<String> {
    let password = match std::env::var("DOORSTEP_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("无法读取密码 / cannot read the password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if let Err(why) = accounts::check_password_policy(login, &password) {
        bail!("{why}");
    }
    Ok(auth::hash_password(&password)?)
}

/// Opens a SQLite database file that must already exist.
/// Where a backup to `to` is written until it is verified: beside it, hidden.
fn partial_path(to: &std::path::Path) -> PathBuf {
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backup".into());
    to.with_file_name(format!(".{name}.partial"))
}

/// Removes a SQLite database file and its write-ahead log and shared-memory files, if present.
fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
}

fn existing_sqlite(path: &std::path::Path) -> anyhow::Result<SqliteStorage> {
    if !path.is_file() {
        bail!("找不到数据库文件 / no database file at {}", path.display());
    }
    SqliteStorage::open_file(path).with_context(|| format!("无法打开 / cannot open {}", path.display()))
}

/// Copies everything, verifies, and reports; fails if the copy differs from its source.
fn copy_and_verify(from: &dyn Storage, to: &dyn Storage, replace: bool) -> anyhow::Result<()> {
    let report = transfer::copy(from, to, replace)?;
    for (table, rows) in &report.rows {
        println!("  {table}: {rows}");
    }
    // Checked against the snapshot the copy read, not the source as it is now: a source that
    // keeps taking writes (a backup or a migration rehearsal beside a running server) verifies.
    let differences = transfer::verify_copy(&report, to)?;
    if differences.is_empty() {
        let documents = to.document_heads()?.len();
        println!(
            "已复制并校验：{documents} 个文档，版本一致 / copied and verified: {documents} documents, every document's heads match"
        );
        Ok(())
    } else {
        for difference in differences.iter().take(50) {
            println!("  {difference}");
        }
        bail!("校验发现 {} 处不同 / verification found {} differences", differences.len(), differences.len())
    }
}

trait WithTls {
    fn with_tls(self, tls: TlsArgs) -> Self;
}

impl WithTls for Config {
    fn with_tls(mut self, tls: TlsArgs) -> Self {
        self.tls_cert = tls.tls_cert.or(self.tls_cert);
        self.tls_key = tls.tls_key.or(self.tls_key);
        self
    }
}

fn run(
    mut config: Config,
    storage: Arc<dyn Storage>,
    listen: Option<std::net::SocketAddr>,
    demo_data: bool,
) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if demo_data {
        match demo::seed(storage.as_ref(), http::now())? {
            Some(summary) => {
                println!(
                    "演示数据已生成 / demo county created: {} households, {} requests",
                    summary.households, summary.requests
                );
                println!("设备注册码 / enrolment codes to try (valid 7 days, single use):");
                for login in &summary.logins {
                    println!("  {}  {} ({})  {}", login.code, login.name, login.role.label_zh(), login.area);
                }
                println!("工作台账号 / dashboard accounts (sign in at /dashboard):");
                for account in &summary.accounts {
                    println!(
                        "  {}  {}  {} ({})",
                        account.login,
                        account.password,
                        account.name,
                        account.role.label_zh()
                    );
                }
            }
            None => println!("数据库已有数据，跳过演示数据 / the database has data; demo county not added"),
        }
    }
    let scheme = if config.tls()?.is_some() { "https" } else { "http" };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("无法监听 / cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        println!(
            "Doorstep 服务器已启动 / server listening on {scheme}://{addr}  (data: {})",
            config.describe_storage()
        );
        // Ctrl-C, or SIGTERM from systemd or a rolling restart: stop accepting, finish the
        // requests in flight (their transactions commit or roll back whole), then exit.
        let shutdown = async {
            #[cfg(unix)]
            {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    Ok(term) => term,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            tracing::info!("正在停止 / shutting down: finishing requests in flight");
        };
        doorstep_server::serve(&config, storage, listener, shutdown).await?;
        Ok(())
    })
}

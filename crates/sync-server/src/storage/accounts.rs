//! Staff and member administration written once for both backends: sign-in attempts reserved
//! atomically, accounts disabled, unlocked and given new passwords, members' roles changed and
//! members disabled. The statements run through [`AdminSql`], which each backend implements
//! over one transaction ([`DashboardStorage::admin_transaction`]); they are written with `$n`
//! placeholders, which the SQLite side reads as `?n`.

use doorstep_core::ids::{Code, DeviceId, MemberId};
use doorstep_core::time::Timestamp;

use crate::scope::Role;
use crate::storage::StorageError;
use crate::storage::dashboard::{DashboardStorage, StaffAccount};
use crate::storage::engine::parse;

/// A value bound to, or read from, an administration statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlValue {
    /// SQL `NULL` (read only: statements write `NULL` literally).
    Null,
    /// An integer (`INTEGER` / `BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (`BLOB` / `BYTEA`).
    Blob(Vec<u8>),
}

impl SqlValue {
    fn int(&self) -> Option<i64> {
        match self {
            SqlValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    fn text(&self) -> Result<&str, StorageError> {
        match self {
            SqlValue::Text(v) => Ok(v),
            other => Err(StorageError::Damaged(format!("expected text, found {other:?}"))),
        }
    }
}

/// One open transaction that administration statements run in.
pub trait AdminSql {
    /// Runs a statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StorageError>;
    /// Runs a query (or a statement with `RETURNING`); returns its rows.
    fn rows(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StorageError>;
}

/// Runs `work` in one administration transaction and returns what it computed.
fn in_transaction<S, T>(
    storage: &S,
    mut work: impl FnMut(&mut dyn AdminSql) -> Result<T, StorageError> + Send,
) -> Result<T, StorageError>
where
    S: DashboardStorage + ?Sized,
    T: Send,
{
    let mut out = None;
    storage.admin_transaction(&mut |sql: &mut dyn AdminSql| {
        out = Some(work(sql)?);
        Ok(())
    })?;
    out.ok_or_else(|| StorageError::Damaged("administration transaction returned nothing".into()))
}

fn text(v: impl Into<String>) -> SqlValue {
    SqlValue::Text(v.into())
}

fn audit(sql: &mut dyn AdminSql, action: &str, detail: &str, now: Timestamp) -> Result<(), StorageError> {
    sql.exec(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, 'admin', $2, $3)",
        &[SqlValue::Int(now.millis()), text(action), text(detail)],
    )?;
    Ok(())
}

/// What a sign-in attempt may do, decided before any password is checked.
#[derive(Clone, Debug)]
pub enum Reservation {
    /// No enabled account has this login (unknown, disabled, or its member disabled). It is
    /// counted and locked all the same: check the password against a dummy hash (unless
    /// locked) and answer exactly as for a known login.
    Unknown {
        /// Locked until then: refuse without checking.
        locked_until: Option<Timestamp>,
        /// This was the last attempt before the lock.
        last: bool,
    },
    /// Locked until then: refuse without checking the password.
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// Check the password. The attempt is already counted as a failure; a success resets it.
    Check {
        /// The account.
        account: StaffAccount,
        /// This is the last attempt before the lock (the lock is already set).
        last: bool,
    },
}

/// The failure count and lock after one more attempt, from the count and lock before it:
/// an expired lock starts a new count, and reaching `max` locks for `lock_ms`.
pub fn next_attempt(
    failures: u32,
    locked_until: Option<Timestamp>,
    now: Timestamp,
    max: u32,
    lock_ms: i64,
) -> (u32, Option<Timestamp>) {
    let lock = Timestamp(now.millis().saturating_add(lock_ms));
    match locked_until {
        Some(until) if until <= now => (1, (max <= 1).then_some(lock)),
        Some(until) => (failures.saturating_add(1), Some(until)),
        None => {
            let failures = failures.saturating_add(1);
            (failures, (failures >= max).then_some(lock))
        }
    }
}

/// Decides an attempt from the count and lock after [`next_attempt`] (or the same update done
/// in SQL): more attempts than `max`, or a lock that was already there, are refused unchecked.
pub fn decide(failures: u32, locked_until: Option<Timestamp>, now: Timestamp, max: u32) -> Option<bool> {
    match locked_until {
        _ if failures > max => None,
        Some(until) if until > now && failures < max => None,
        _ => Some(failures >= max),
    }
}

/// Reserves one sign-in attempt for `login` in one statement: the failure count goes up (and
/// the lock is set when it reaches `max`) before the password is checked, so parallel guesses
/// cannot check more than `max` passwords, and none of them is lost. A login without an
/// enabled account is counted the same way in `unknown_sign_ins`.
pub fn reserve_sign_in<S: DashboardStorage + ?Sized>(
    storage: &S,
    login: &str,
    now: Timestamp,
    max: u32,
    lock_ms: i64,
) -> Result<Reservation, StorageError> {
    let lock = now.millis().saturating_add(lock_ms);
    let login = login.to_owned();
    let rows = in_transaction(storage, |sql| {
        let params = [
            text(login.as_str()),
            SqlValue::Int(now.millis()),
            SqlValue::Int(i64::from(max)),
            SqlValue::Int(lock),
        ];
        let known = sql.rows(
            &format!(
                "UPDATE staff_accounts SET {}
                 WHERE login = $1 AND disabled_at IS NULL
                   AND member_id IN (SELECT member_id FROM members WHERE disabled_at IS NULL)
                 RETURNING failed_attempts, locked_until, account_id, member_id, password_hash",
                count_attempt("staff_accounts")
            ),
            &params,
        )?;
        if !known.is_empty() {
            return Ok(known);
        }
        // No such (enabled) account: the same count and lock in a table of their own, so the
        // answers match a known login's on every node.
        sql.exec(
            "DELETE FROM unknown_sign_ins WHERE updated_at < CAST($1 AS BIGINT)",
            &[SqlValue::Int(now.millis().saturating_sub(UNKNOWN_KEPT_MS))],
        )?;
        sql.rows(
            &format!(
                "INSERT INTO unknown_sign_ins (login, failed_attempts, locked_until, updated_at)
                 VALUES ($1, 1, CASE WHEN CAST($3 AS BIGINT) <= 1 THEN CAST($4 AS BIGINT) ELSE NULL END,
                         CAST($2 AS BIGINT))
                 ON CONFLICT (login) DO UPDATE SET {}, updated_at = CAST($2 AS BIGINT)
                 RETURNING failed_attempts, locked_until",
                count_attempt("unknown_sign_ins")
            ),
            &params,
        )
    })?;
    let Some(row) = rows.into_iter().next() else {
        return Err(StorageError::Damaged("sign-in reservation returned nothing".into()));
    };
    let mut columns = row.into_iter();
    let failures = columns.next().and_then(|v| v.int()).unwrap_or(0);
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    let locked_until = columns.next().and_then(|v| v.int()).map(Timestamp);
    let decision = decide(failures, locked_until, now, max);
    let (Some(id), Some(member), Some(hash)) = (columns.next(), columns.next(), columns.next()) else {
        return Ok(Reservation::Unknown {
            locked_until: match decision {
                None => Some(locked_until.unwrap_or(Timestamp(lock))),
                Some(_) => None,
            },
            last: decision.unwrap_or(true),
        });
    };
    match decision {
        None => Ok(Reservation::Locked { until: locked_until.unwrap_or(Timestamp(lock)) }),
        Some(last) => Ok(Reservation::Check {
            account: StaffAccount {
                id: id.text()?.to_owned(),
                member: parse(member.text()?, "member id")?,
                login,
                password_hash: hash.text()?.to_owned(),
                failed_attempts: failures,
                locked_until,
            },
            last,
        }),
    }
}

/// How long an unknown login's failures are kept after its last attempt.
const UNKNOWN_KEPT_MS: i64 = 24 * 3600 * 1000;

/// One more attempt, as SQL over `table`'s `failed_attempts` and `locked_until` ($2 now, $3 the
/// limit, $4 the lock's end): [`next_attempt`]'s rules. Columns are qualified, as an upsert's
/// `DO UPDATE` needs on PostgreSQL.
fn count_attempt(table: &str) -> String {
    format!(
        "failed_attempts = CASE
            WHEN {table}.locked_until IS NOT NULL AND {table}.locked_until <= CAST($2 AS BIGINT) THEN 1
            ELSE {table}.failed_attempts + 1 END,
        locked_until = CASE
            WHEN {table}.locked_until IS NOT NULL AND {table}.locked_until <= CAST($2 AS BIGINT) THEN
                CASE WHEN CAST($3 AS BIGINT) <= 1 THEN CAST($4 AS BIGINT) ELSE NULL END
            WHEN {table}.locked_until IS NULL AND {table}.failed_attempts + 1 >= CAST($3 AS BIGINT)
                THEN CAST($4 AS BIGINT)
            ELSE {table}.locked_until END"
    )
}

/// The rules every staff password follows, on the command line and the dashboard alike.
pub fn check_password_policy(login: &str, password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < 8 {
        return Err("密码至少 8 个字符 / the password needs at least 8 characters".into());
    }
    if chars > 128 {
        return Err("密码最多 128 个字符 / the password may have at most 128 characters".into());
    }
    if password.eq_ignore_ascii_case(login) {
        return Err("密码不能与账号相同 / the password must not be the login".into());
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return Err("密码不能只有一个重复的字符 / the password must not repeat one character".into());
    }
    Ok(())
}

/// Disables (or enables again) the account with this login. Disabling ends its sessions at
/// once; enabling clears its failures and lock. Returns `false` when nothing changed.
pub fn set_account_disabled<S: DashboardStorage + ?Sized>(
    storage: &S,
    login: &str,
    disabled: bool,
    now: Timestamp,
) -> Result<bool, StorageError> {
    let login = login.to_owned();
    in_transaction(storage, |sql| {
        let changed = if disabled {
            sql.exec(
                "UPDATE staff_accounts SET disabled_at = CAST($2 AS BIGINT) WHERE login = $1 AND disabled_at IS NULL",
                &[text(login.as_str()), SqlValue::Int(now.millis())],
            )?
        } else {
            sql.exec(
                "UPDATE staff_accounts SET disabled_at = NULL, failed_attempts = 0, locked_until = NULL
                 WHERE login = $1 AND disabled_at IS NOT NULL",
                &[text(login.as_str())],
            )?
        };
        end_sessions(sql, &login)?;
        if changed > 0 {
            audit(
                sql,
                if disabled { "staff_account_disabled" } else { "staff_account_enabled" },
                &login,
                now,
            )?;
        }
        Ok(changed > 0)
    })
}

fn end_sessions(sql: &mut dyn AdminSql, login: &str) -> Result<u64, StorageError> {
    sql.exec(
        "DELETE FROM staff_sessions WHERE account_id IN (SELECT account_id FROM staff_accounts WHERE login = $1)",
        &[text(login)],
    )
}

/// Gives the account a new password hash, clears its failures and lock, and ends its sessions
/// except `keep` (the session that changed its own password). Returns `false` for no such login.
pub fn set_password<S: DashboardStorage + ?Sized>(
    storage: &S,
    login: &str,
    password_hash: &str,
    keep: Option<&[u8; 32]>,
    now: Timestamp,
) -> Result<bool, StorageError> {
    let (login, hash, keep) = (login.to_owned(), password_hash.to_owned(), keep.map(|k| k.to_vec()));
    in_transaction(storage, |sql| {
        let changed = sql.exec(
            "UPDATE staff_accounts SET password_hash = $2, failed_attempts = 0, locked_until = NULL WHERE login = $1",
            &[text(login.as_str()), text(hash.as_str())],
        )?;
        match &keep {
            Some(keep) => sql.exec(
                "DELETE FROM staff_sessions WHERE session_hash <> $2
                 AND account_id IN (SELECT account_id FROM staff_accounts WHERE login = $1)",
                &[text(login.as_str()), SqlValue::Blob(keep.clone())],
            )?,
            None => end_sessions(sql, &login)?,
        };
        if changed > 0 {
            let action = if keep.is_some() { "staff_password_changed" } else { "staff_password_reset" };
            audit(sql, action, &login, now)?;
        }
        Ok(changed > 0)
    })
}

/// Clears an account's failures and lock. Returns `false` for no such login.
pub fn unlock_account<S: DashboardStorage + ?Sized>(
    storage: &S,
    login: &str,
    now: Timestamp,
) -> Result<bool, StorageError> {
    let login = login.to_owned();
    in_transaction(storage, |sql| {
        let changed = sql.exec(
            "UPDATE staff_accounts SET failed_attempts = 0, locked_until = NULL WHERE login = $1",
            &[text(login.as_str())],
        )?;
        if changed > 0 {
            audit(sql, "staff_account_unlocked", &login, now)?;
        }
        Ok(changed > 0)
    })
}

/// Logins of disabled accounts (their own, or their member's).
pub fn disabled_logins<S: DashboardStorage + ?Sized>(storage: &S) -> Result<Vec<String>, StorageError> {
    let rows = in_transaction(storage, |sql| {
        sql.rows(
            "SELECT login FROM staff_accounts WHERE disabled_at IS NOT NULL
             OR member_id IN (SELECT member_id FROM members WHERE disabled_at IS NOT NULL) ORDER BY login",
            &[],
        )
    })?;
    rows.into_iter().map(|r| r.first().map_or(Ok(String::new()), |v| v.text().map(str::to_owned))).collect()
}

/// Disabled members.
pub fn disabled_members<S: DashboardStorage + ?Sized>(storage: &S) -> Result<Vec<MemberId>, StorageError> {
    let rows = in_transaction(storage, |sql| {
        sql.rows("SELECT member_id FROM members WHERE disabled_at IS NOT NULL", &[])
    })?;
    rows.into_iter()
        .map(|r| match r.first() {
            Some(v) => parse(v.text()?, "member id"),
            None => Err(StorageError::Damaged("no member id".into())),
        })
        .collect()
}

/// Gives a member another role (and department, for department staff). Their scope version
/// rises, so their devices compare their whole scope on the next round (and purge what the new
/// role may not hold); their dashboard sessions read the new role on the next page. Returns
/// `false` for no such (enabled) member.
pub fn set_member_role<S: DashboardStorage + ?Sized>(
    storage: &S,
    member: MemberId,
    role: Role,
    department: Option<&Code>,
    now: Timestamp,
) -> Result<bool, StorageError> {
    let (member, department) = (member.to_string(), department.map(|d| d.as_str().to_owned()));
    in_transaction(storage, |sql| {
        let changed = match &department {
            Some(d) => sql.exec(
                "UPDATE members SET role = $2, department = $3, scope_version = scope_version + 1
                 WHERE member_id = $1 AND disabled_at IS NULL",
                &[text(member.as_str()), text(role.as_str()), text(d.as_str())],
            )?,
            None => sql.exec(
                "UPDATE members SET role = $2, department = NULL, scope_version = scope_version + 1
                 WHERE member_id = $1 AND disabled_at IS NULL",
                &[text(member.as_str()), text(role.as_str())],
            )?,
        };
        if changed > 0 {
            audit(sql, "member_role_changed", &format!("{member} {}", role.as_str()), now)?;
        }
        Ok(changed > 0)
    })
}

/// Disables a member at once: every device of theirs is revoked (the caller announces them so
/// open WebSockets close), every dashboard account of theirs disabled and its sessions ended,
/// and their unused enrolment codes deleted. Returns the devices revoked, or `None` when no
/// enabled member has this id.
pub fn disable_member<S: DashboardStorage + ?Sized>(
    storage: &S,
    member: MemberId,
    now: Timestamp,
) -> Result<Option<Vec<DeviceId>>, StorageError> {
    let member = member.to_string();
    let at = SqlValue::Int(now.millis());
    let revoked = in_transaction(storage, |sql| {
        let id = text(member.as_str());
        let changed = sql.exec(
            "UPDATE members SET disabled_at = CAST($2 AS BIGINT), scope_version = scope_version + 1
             WHERE member_id = $1 AND disabled_at IS NULL",
            &[id.clone(), at.clone()],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        let devices = sql.rows(
            "UPDATE devices SET revoked_at = CAST($2 AS BIGINT) WHERE member_id = $1 AND revoked_at IS NULL
             RETURNING device_id",
            &[id.clone(), at.clone()],
        )?;
        sql.exec(
            "UPDATE staff_accounts SET disabled_at = CAST($2 AS BIGINT) WHERE member_id = $1 AND disabled_at IS NULL",
            &[id.clone(), at.clone()],
        )?;
        sql.exec(
            "DELETE FROM staff_sessions WHERE account_id IN (SELECT account_id FROM staff_accounts WHERE member_id = $1)",
            std::slice::from_ref(&id),
        )?;
        sql.exec(
            "DELETE FROM enrolment_codes WHERE member_id = $1 AND used_at IS NULL",
            std::slice::from_ref(&id),
        )?;
        audit(sql, "member_disabled", &member, now)?;
        Ok(Some(devices))
    })?;
    revoked
        .map(|rows| {
            rows.into_iter()
                .map(|r| match r.first() {
                    Some(v) => parse(v.text()?, "device id"),
                    None => Err(StorageError::Damaged("no device id".into())),
                })
                .collect()
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_up_lock_at_the_limit_and_start_again_after_the_lock() {
        let now = Timestamp(1_000_000);
        let mut state = (0, None);
        let mut checked = 0;
        for _ in 0..40 {
            state = next_attempt(state.0, state.1, now, 5, 60_000);
            if decide(state.0, state.1, now, 5).is_some() {
                checked += 1;
            }
        }
        assert_eq!(state.0, 40);
        assert_eq!(checked, 5, "at most the limit is ever checked");
        let later = Timestamp(now.millis() + 60_001);
        let (failures, locked) = next_attempt(state.0, state.1, later, 5, 60_000);
        assert_eq!((failures, locked), (1, None), "a new count after the lock");
        assert_eq!(decide(failures, locked, later, 5), Some(false));
    }

    #[test]
    fn one_password_policy() {
        assert!(check_password_policy("li", "short").is_err());
        assert!(check_password_policy("li", "aaaaaaaaaa").is_err());
        assert!(check_password_policy("lizhuren", "LIZHUREN").is_err());
        assert!(check_password_policy("li", "correct-horse-battery").is_ok());
    }
}

//! [`DashboardStorage`] on the embedded SQLite file. The SQL is portable (PostgreSQL accepts
//! it unchanged apart from placeholders), so a PostgreSQL port is mechanical.

use automerge::AutoCommit;
use doorstep_core::ids::{Code, MemberId};
use doorstep_core::model::Taxonomy;
use doorstep_core::time::Timestamp;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::scope::Scope;
use crate::storage::StorageError;
use crate::storage::accounts::{AdminSql, SqlValue};
use crate::storage::dashboard::{
    AccountCreated, ChangedDocument, DashboardStorage, NewSession, StaffAccount, StaffAccountRow,
    StaffSession, parse_taxonomy, taxonomy_json,
};
use crate::storage::engine::parse;
use crate::storage::sqlite::SqliteStorage;

impl DashboardStorage for SqliteStorage {
    fn create_staff_account(
        &self,
        member: MemberId,
        login: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<AccountCreated, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM members WHERE member_id = ?1)",
            [member.to_string()],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(AccountCreated::NoSuchMember);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let added = tx.execute(
            "INSERT INTO staff_accounts (account_id, member_id, login, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (login) DO NOTHING",
            params![id, member.to_string(), login, password_hash, now.millis()],
        )?;
        if added == 0 {
            return Ok(AccountCreated::LoginTaken);
        }
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'admin', 'staff_account_created', ?2)",
            params![now.millis(), login],
        )?;
        tx.commit()?;
        Ok(AccountCreated::Created(id))
    }

    fn staff_account(&self, login: &str) -> Result<Option<StaffAccount>, StorageError> {
        let row = self
            .lock()
            .query_row(
                "SELECT account_id, member_id, login, password_hash, failed_attempts, locked_until
                 FROM staff_accounts WHERE login = ?1",
                [login],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(id, member, login, password_hash, failed, locked)| {
            Ok(StaffAccount {
                id,
                member: parse(&member, "member id")?,
                login,
                password_hash,
                failed_attempts: u32::try_from(failed).unwrap_or(u32::MAX),
                locked_until: locked.map(Timestamp),
            })
        })
        .transpose()
    }

    fn record_sign_in(
        &self,
        account: &str,
        failed_attempts: u32,
        locked_until: Option<Timestamp>,
        session: Option<&NewSession>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE staff_accounts SET failed_attempts = ?2, locked_until = ?3 WHERE account_id = ?1",
            params![account, i64::from(failed_attempts), locked_until.map(Timestamp::millis)],
        )?;
        tx.execute("DELETE FROM staff_sessions WHERE expires_at <= ?1", [now.millis()])?;
        if let Some(session) = session {
            tx.execute(
                "INSERT INTO staff_sessions (session_hash, account_id, csrf_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    session.hash.as_slice(),
                    account,
                    session.csrf,
                    now.millis(),
                    session.expires_at.millis()
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn staff_session(&self, hash: &[u8; 32], now: Timestamp) -> Result<Option<StaffSession>, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let row = tx
            .query_row(
                "SELECT s.account_id, a.login, s.csrf_token, m.member_id, m.name, m.role, m.department
                 FROM staff_sessions s
                 JOIN staff_accounts a ON a.account_id = s.account_id
                 JOIN members m ON m.member_id = a.member_id
                 WHERE s.session_hash = ?1 AND s.expires_at > ?2
                   AND a.disabled_at IS NULL AND m.disabled_at IS NULL",
                params![hash.as_slice(), now.millis()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((account, login, csrf, member, name, role, department)) = row else { return Ok(None) };
        let grids = {
            let mut stmt =
                tx.prepare_cached("SELECT grid_id FROM member_grids WHERE member_id = ?1 ORDER BY grid_id")?;
            let rows = stmt.query_map([&member], |r| r.get::<_, String>(0))?;
            rows.map(|g| parse(&g?, "grid id")).collect::<Result<Vec<_>, _>>()?
        };
        let scope = Scope {
            member: parse(&member, "member id")?,
            role: parse(&role, "role")?,
            grids,
            department: department.and_then(|d| Code::new(d).ok()),
        };
        Ok(Some(StaffSession { account, login, name, scope, csrf }))
    }

    fn end_staff_session(&self, hash: &[u8; 32]) -> Result<(), StorageError> {
        self.lock().execute("DELETE FROM staff_sessions WHERE session_hash = ?1", [hash.as_slice()])?;
        Ok(())
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccountRow>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT account_id, login, member_id, locked_until FROM staff_accounts ORDER BY login",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?))
        })?;
        rows.map(|r| {
            let (id, login, member, locked): (String, String, String, Option<i64>) = r?;
            Ok(StaffAccountRow {
                id,
                login,
                member: parse(&member, "member id")?,
                locked_until: locked.map(Timestamp),
            })
        })
        .collect()
    }

    fn admin_transaction(
        &self,
        work: &mut (dyn FnMut(&mut dyn AdminSql) -> Result<(), StorageError> + Send),
    ) -> Result<(), StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        work(&mut SqliteAdmin(&tx))?;
        tx.commit()?;
        Ok(())
    }

    fn documents_since(&self, seq: u64) -> Result<Vec<ChangedDocument>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT doc_id, snapshot, last_seq FROM documents WHERE last_seq > ?1 ORDER BY last_seq",
        )?;
        let rows = stmt.query_map([i64::try_from(seq).unwrap_or(i64::MAX)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))
        })?;
        rows.map(|r| {
            let (id, snapshot, last_seq) = r?;
            let doc = AutoCommit::load(&snapshot)
                .map_err(|e| StorageError::Damaged(format!("document {id}: {e}")))?;
            Ok(ChangedDocument { id: parse(&id, "document id")?, doc, last_seq: last_seq.unsigned_abs() })
        })
        .collect()
    }

    fn county_taxonomy(&self) -> Result<Option<Taxonomy>, StorageError> {
        let row = self
            .lock()
            .query_row("SELECT version, body FROM county_taxonomy WHERE id = 1", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .optional()?;
        row.map(|(version, body)| parse_taxonomy(&body, version)).transpose()
    }

    fn county_taxonomy_version(&self) -> Result<Option<u32>, StorageError> {
        let version: Option<i64> = self
            .lock()
            .prepare_cached("SELECT version FROM county_taxonomy WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(version.map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
    }

    fn save_county_taxonomy(
        &self,
        taxonomy: &Taxonomy,
        expected: Option<u32>,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let body = taxonomy_json(taxonomy)?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored = match expected {
            None => tx.execute(
                "INSERT INTO county_taxonomy (id, version, body, updated_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
                params![i64::from(taxonomy.version), body, now.millis()],
            )?,
            Some(old) => tx.execute(
                "UPDATE county_taxonomy SET version = ?1, body = ?2, updated_at = ?3
                 WHERE id = 1 AND version = ?4",
                params![i64::from(taxonomy.version), body, now.millis(), i64::from(old)],
            )?,
        };
        if stored == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'admin', 'taxonomy_edited', ?2)",
            params![now.millis(), detail],
        )?;
        tx.commit()?;
        Ok(true)
    }
}

/// [`AdminSql`] over one SQLite transaction (`$n` placeholders read as `?n`).
struct SqliteAdmin<'a>(&'a rusqlite::Transaction<'a>);

fn sqlite_params(params: &[SqlValue]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value;
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => Value::Null,
            SqlValue::Int(v) => Value::Integer(*v),
            SqlValue::Text(v) => Value::Text(v.clone()),
            SqlValue::Blob(v) => Value::Blob(v.clone()),
        })
        .collect()
}

impl AdminSql for SqliteAdmin<'_> {
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StorageError> {
        let changed =
            self.0.execute(&sql.replace('$', "?"), rusqlite::params_from_iter(sqlite_params(params)))?;
        Ok(changed as u64)
    }

    fn rows(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StorageError> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.0.prepare(&sql.replace('$', "?"))?;
        let columns = stmt.column_count();
        let rows = stmt.query_map(rusqlite::params_from_iter(sqlite_params(params)), |r| {
            (0..columns)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => SqlValue::Null,
                        ValueRef::Integer(v) => SqlValue::Int(v),
                        ValueRef::Real(v) => SqlValue::Int(v as i64),
                        ValueRef::Text(v) => SqlValue::Text(String::from_utf8_lossy(v).into_owned()),
                        ValueRef::Blob(v) => SqlValue::Blob(v.to_vec()),
                    })
                })
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

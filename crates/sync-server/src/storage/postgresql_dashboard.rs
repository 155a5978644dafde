//! [`DashboardStorage`] on PostgreSQL: the same statements as `sqlite_dashboard`, with numbered
//! placeholders.

use automerge::AutoCommit;
use doorstep_core::ids::{Code, MemberId};
use doorstep_core::model::Taxonomy;
use doorstep_core::time::Timestamp;

use crate::scope::Scope;
use crate::storage::StorageError;
use crate::storage::accounts::{AdminSql, SqlValue};
use crate::storage::dashboard::{
    AccountCreated, ChangedDocument, DashboardStorage, NewSession, StaffAccount, StaffAccountRow,
    StaffSession, parse_taxonomy, taxonomy_json,
};
use crate::storage::engine::parse;
use crate::storage::postgresql::PostgresStorage;

impl DashboardStorage for PostgresStorage {
    fn create_staff_account(
        &self,
        member: MemberId,
        login: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<AccountCreated, StorageError> {
        self.with_client(|conn| {
            let mut tx = conn.transaction()?;
            let exists: bool = tx
                .query_one("SELECT EXISTS (SELECT 1 FROM members WHERE member_id = $1)", &[&member.to_string()])?
                .get(0);
            if !exists {
                return Ok(AccountCreated::NoSuchMember);
            }
            let id = uuid::Uuid::new_v4().to_string();
            let added = tx.execute(
                "INSERT INTO staff_accounts (account_id, member_id, login, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (login) DO NOTHING",
                &[&id, &member.to_string(), &login, &password_hash, &now.millis()],
            )?;
            if added == 0 {
                return Ok(AccountCreated::LoginTaken);
            }
            tx.execute(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, 'admin', 'staff_account_created', $2)",
                &[&now.millis(), &login],
            )?;
            tx.commit()?;
            Ok(AccountCreated::Created(id))
        })
    }

    fn staff_account(&self, login: &str) -> Result<Option<StaffAccount>, StorageError> {
        self.with_client(|conn| {
            let row = conn.query_opt(
                "SELECT account_id, member_id, login, password_hash, failed_attempts, locked_until
                 FROM staff_accounts WHERE login = $1",
                &[&login],
            )?;
            row.map(|r| {
                Ok(StaffAccount {
                    id: r.get(0),
                    member: parse(r.get(1), "member id")?,
                    login: r.get(2),
                    password_hash: r.get(3),
                    failed_attempts: u32::try_from(r.get::<_, i64>(4)).unwrap_or(u32::MAX),
                    locked_until: r.get::<_, Option<i64>>(5).map(Timestamp),
                })
            })
            .transpose()
        })
    }

    fn record_sign_in(
        &self,
        account: &str,
        failed_attempts: u32,
        locked_until: Option<Timestamp>,
        session: Option<&NewSession>,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.with_client(|conn| {
            let mut tx = conn.transaction()?;
            tx.execute(
                "UPDATE staff_accounts SET failed_attempts = $2, locked_until = $3 WHERE account_id = $1",
                &[&account, &i64::from(failed_attempts), &locked_until.map(Timestamp::millis)],
            )?;
            tx.execute("DELETE FROM staff_sessions WHERE expires_at <= $1", &[&now.millis()])?;
            if let Some(session) = session {
                tx.execute(
                    "INSERT INTO staff_sessions (session_hash, account_id, csrf_token, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&session.hash.as_slice(), &account, &session.csrf, &now.millis(), &session.expires_at.millis()],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn staff_session(&self, hash: &[u8; 32], now: Timestamp) -> Result<Option<StaffSession>, StorageError> {
        self.with_client(|conn| {
            let row = conn.query_opt(
                "SELECT s.account_id, a.login, s.csrf_token, m.member_id, m.name, m.role, m.department
                 FROM staff_sessions s
                 JOIN staff_accounts a ON a.account_id = s.account_id
                 JOIN members m ON m.member_id = a.member_id
                 WHERE s.session_hash = $1 AND s.expires_at > $2
                   AND a.disabled_at IS NULL AND m.disabled_at IS NULL",
                &[&hash.as_slice(), &now.millis()],
            )?;
            let Some(row) = row else { return Ok(None) };
            let member: String = row.get(3);
            let grids = conn
                .query("SELECT grid_id FROM member_grids WHERE member_id = $1 ORDER BY grid_id", &[&member])?
                .iter()
                .map(|g| parse(g.get(0), "grid id"))
                .collect::<Result<Vec<_>, _>>()?;
            let department: Option<String> = row.get(6);
            let scope = Scope {
                member: parse(&member, "member id")?,
                role: parse(row.get(5), "role")?,
                grids,
                department: department.and_then(|d| Code::new(d).ok()),
            };
            Ok(Some(StaffSession {
                account: row.get(0),
                login: row.get(1),
                name: row.get(4),
                scope,
                csrf: row.get(2),
            }))
        })
    }

    fn end_staff_session(&self, hash: &[u8; 32]) -> Result<(), StorageError> {
        self.with_client(|conn| {
            conn.execute("DELETE FROM staff_sessions WHERE session_hash = $1", &[&hash.as_slice()])?;
            Ok(())
        })
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccountRow>, StorageError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "SELECT account_id, login, member_id, locked_until FROM staff_accounts ORDER BY login",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(StaffAccountRow {
                        id: r.get(0),
                        login: r.get(1),
                        member: parse(r.get(2), "member id")?,
                        locked_until: r.get::<_, Option<i64>>(3).map(Timestamp),
                    })
                })
                .collect()
        })
    }

    fn admin_transaction(
        &self,
        work: &mut (dyn FnMut(&mut dyn AdminSql) -> Result<(), StorageError> + Send),
    ) -> Result<(), StorageError> {
        self.with_client(|conn| {
            let mut tx = conn.transaction()?;
            work(&mut PostgresAdmin(&mut tx))?;
            tx.commit()?;
            Ok(())
        })
    }

    fn documents_since(&self, seq: u64) -> Result<Vec<ChangedDocument>, StorageError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "SELECT doc_id, snapshot, last_seq FROM documents WHERE last_seq > $1 ORDER BY last_seq",
                &[&i64::try_from(seq).unwrap_or(i64::MAX)],
            )?;
            rows.iter()
                .map(|r| {
                    let id: &str = r.get(0);
                    let doc = AutoCommit::load(r.get(1))
                        .map_err(|e| StorageError::Damaged(format!("document {id}: {e}")))?;
                    Ok(ChangedDocument {
                        id: parse(id, "document id")?,
                        doc,
                        last_seq: r.get::<_, i64>(2).unsigned_abs(),
                    })
                })
                .collect()
        })
    }

    fn county_taxonomy(&self) -> Result<Option<Taxonomy>, StorageError> {
        self.with_client(|conn| {
            let row = conn.query_opt("SELECT version, body FROM county_taxonomy WHERE id = 1", &[])?;
            row.map(|r| parse_taxonomy(r.get(1), r.get(0))).transpose()
        })
    }

    fn county_taxonomy_version(&self) -> Result<Option<u32>, StorageError> {
        self.with_client(|conn| {
            let row = conn.query_opt("SELECT version FROM county_taxonomy WHERE id = 1", &[])?;
            Ok(row.map(|r| u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX)))
        })
    }

    fn save_county_taxonomy(
        &self,
        taxonomy: &Taxonomy,
        expected: Option<u32>,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let body = taxonomy_json(taxonomy)?;
        self.with_client(|conn| {
            let mut tx = conn.transaction()?;
            let version = i64::from(taxonomy.version);
            let stored = match expected {
                None => tx.execute(
                    "INSERT INTO county_taxonomy (id, version, body, updated_at) VALUES (1, $1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                    &[&version, &body, &now.millis()],
                )?,
                Some(old) => tx.execute(
                    "UPDATE county_taxonomy SET version = $1, body = $2, updated_at = $3
                     WHERE id = 1 AND version = $4",
                    &[&version, &body, &now.millis(), &i64::from(old)],
                )?,
            };
            if stored == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, 'admin', 'taxonomy_edited', $2)",
                &[&now.millis(), &detail],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
}

/// [`AdminSql`] over one PostgreSQL transaction.
struct PostgresAdmin<'a, 'b>(&'a mut ::postgres::Transaction<'b>);

fn postgres_params(params: &[SqlValue]) -> Vec<Box<dyn ::postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn ::postgres::types::ToSql + Sync> {
            match p {
                SqlValue::Null => Box::new(Option::<i64>::None),
                SqlValue::Int(v) => Box::new(*v),
                SqlValue::Text(v) => Box::new(v.clone()),
                SqlValue::Blob(v) => Box::new(v.clone()),
            }
        })
        .collect()
}

impl AdminSql for PostgresAdmin<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StorageError> {
        let boxed = postgres_params(params);
        let refs: Vec<&(dyn ::postgres::types::ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        Ok(self.0.execute(sql, &refs)?)
    }

    fn rows(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StorageError> {
        let boxed = postgres_params(params);
        let refs: Vec<&(dyn ::postgres::types::ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let rows = self.0.query(sql, &refs)?;
        Ok(rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        if let Ok(v) = row.try_get::<_, Option<i64>>(i) {
                            v.map_or(SqlValue::Null, SqlValue::Int)
                        } else if let Ok(v) = row.try_get::<_, Option<String>>(i) {
                            v.map_or(SqlValue::Null, SqlValue::Text)
                        } else if let Ok(v) = row.try_get::<_, Option<Vec<u8>>>(i) {
                            v.map_or(SqlValue::Null, SqlValue::Blob)
                        } else {
                            SqlValue::Null
                        }
                    })
                    .collect()
            })
            .collect())
    }
}

//! What the county web dashboard stores beyond the sync service: staff accounts, their
//! sessions, and a feed of documents changed since a log position for the dashboard's read
//! model. Like [`super::Storage`], every method is blocking and one transaction.

use automerge::AutoCommit;
use doorstep_core::ids::{DocumentId, MemberId};
use doorstep_core::model::Taxonomy;
use doorstep_core::time::Timestamp;
use serde::Serialize;

use crate::scope::Scope;
use crate::storage::StorageError;

/// A staff account as stored, for signing in.
#[derive(Clone, Debug)]
pub struct StaffAccount {
    /// Account id (a UUID as text).
    pub id: String,
    /// The member whose role and grids give the account its scope.
    pub member: MemberId,
    /// The login name.
    pub login: String,
    /// The argon2 hash of the password (PHC string).
    pub password_hash: String,
    /// Consecutive failed sign-ins.
    pub failed_attempts: u32,
    /// Sign-in is refused until then.
    pub locked_until: Option<Timestamp>,
}

/// A staff account as listed on the administration page.
#[derive(Clone, Debug, Serialize)]
pub struct StaffAccountRow {
    /// Account id.
    pub id: String,
    /// Login name.
    pub login: String,
    /// The member.
    pub member: MemberId,
    /// Locked until then, if locked.
    pub locked_until: Option<Timestamp>,
}

/// The outcome of creating a staff account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCreated {
    /// Created, with this id.
    Created(String),
    /// Another account has this login.
    LoginTaken,
    /// No member has this id.
    NoSuchMember,
}

/// A session to open on a successful sign-in.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// SHA-256 of the session cookie.
    pub hash: [u8; 32],
    /// The session's CSRF token.
    pub csrf: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A signed-in session with the account's current scope.
#[derive(Clone, Debug)]
pub struct StaffSession {
    /// Account id.
    pub account: String,
    /// Login name.
    pub login: String,
    /// The member's name.
    pub name: String,
    /// The member's scope as of now (a reassignment applies at once).
    pub scope: Scope,
    /// The token every form POST must carry.
    pub csrf: String,
}

/// A document changed after some log position, as stored now.
pub struct ChangedDocument {
    /// The document.
    pub id: DocumentId,
    /// Its stored state.
    pub doc: AutoCommit,
    /// The log position of its last stored change.
    pub last_seq: u64,
}

/// Storage for the web dashboard. Every [`super::Storage`] backend implements it.
pub trait DashboardStorage: Send + Sync + 'static {
    /// Creates a staff account for `member` with an argon2 `password_hash`.
    fn create_staff_account(
        &self,
        member: MemberId,
        login: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<AccountCreated, StorageError>;
    /// The account with this login, if any.
    fn staff_account(&self, login: &str) -> Result<Option<StaffAccount>, StorageError>;
    /// Records the outcome of a sign-in: the new failure count and lock, and on success the
    /// session to open (expired sessions are dropped at the same time).
    fn record_sign_in(
        &self,
        account: &str,
        failed_attempts: u32,
        locked_until: Option<Timestamp>,
        session: Option<&NewSession>,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// The live session whose cookie hashes to `hash`, with the account's scope now.
    fn staff_session(&self, hash: &[u8; 32], now: Timestamp) -> Result<Option<StaffSession>, StorageError>;
    /// Ends a session (sign-out).
    fn end_staff_session(&self, hash: &[u8; 32]) -> Result<(), StorageError>;
    /// Every staff account.
    fn staff_accounts(&self) -> Result<Vec<StaffAccountRow>, StorageError>;
    /// Runs `work` in one transaction for the administration statements of
    /// [`super::accounts`] (written once for both backends); commits if it succeeds.
    fn admin_transaction(
        &self,
        work: &mut (dyn FnMut(&mut dyn super::accounts::AdminSql) -> Result<(), StorageError> + Send),
    ) -> Result<(), StorageError>;
    /// Every document whose last change is after log position `seq`, in log order.
    fn documents_since(&self, seq: u64) -> Result<Vec<ChangedDocument>, StorageError>;
    /// The county's taxonomy as last edited on the dashboard; `None` until the first edit (the
    /// taxonomy shipped in the binary is then in force).
    fn county_taxonomy(&self) -> Result<Option<Taxonomy>, StorageError>;
    /// The version of [`DashboardStorage::county_taxonomy`] alone, read on every sync round
    /// to decide whether the device needs the taxonomy at all.
    fn county_taxonomy_version(&self) -> Result<Option<u32>, StorageError>;
    /// Stores an edited taxonomy if the stored version is still `expected` (`None`: nothing
    /// stored yet), and writes the edit to the audit log. Returns `false`, storing nothing, when
    /// another edit came first.
    fn save_county_taxonomy(
        &self,
        taxonomy: &Taxonomy,
        expected: Option<u32>,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, StorageError>;
}

/// Reads a stored county taxonomy (JSON) and checks it.
pub(crate) fn parse_taxonomy(body: &str, version: i64) -> Result<Taxonomy, StorageError> {
    let taxonomy =
        Taxonomy::from_json(body).map_err(|e| StorageError::Damaged(format!("county taxonomy: {e}")))?;
    if i64::from(taxonomy.version) != version {
        return Err(StorageError::Damaged("county taxonomy: version column and body disagree".into()));
    }
    Ok(taxonomy)
}

/// Writes a county taxonomy as stored (JSON).
pub(crate) fn taxonomy_json(taxonomy: &Taxonomy) -> Result<String, StorageError> {
    serde_json::to_string(taxonomy).map_err(|e| StorageError::Damaged(format!("county taxonomy: {e}")))
}

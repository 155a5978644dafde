//! The replica file on disk: one open handle at a time, the files beside it, and telling a
//! wrong key from a damaged file or a file that is not a replica at all.
//!
//! Two handles on one file each keep their own Automerge documents in memory, both write
//! changes with the same actor, and the file ends up with two different changes numbered alike:
//! the document never loads again. So a second open is refused, in this process (a registry of
//! open paths) and from another process (an advisory lock, `flock` on Unix, on `<file>.lock`).
//! Both are released when the handle is dropped.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension};

use crate::error::{CoreError, Result};

/// Canonical paths of the replica files open in this process.
static OPEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// The SQLite files that belong to a replica besides the file itself.
const SIDECARS: [&str; 4] = ["-wal", "-shm", "-journal", ".lock"];

/// Holds a replica file for one handle: registered in this process and locked against others.
#[derive(Debug)]
pub(crate) struct FileGuard {
    path: PathBuf,
    lock: Option<File>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The path that names this file whatever way it is spelled (relative, through a link).
fn canonical(path: &Path) -> Result<PathBuf> {
    if let Ok(found) = std::fs::canonicalize(path) {
        return Ok(found);
    }
    // Not there yet: the directory must be, and the name is kept.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| CoreError::InvalidValue {
        field: "path",
        reason: format!("{} names no file", path.display()),
    })?;
    Ok(std::fs::canonicalize(parent).map_err(CoreError::File)?.join(name))
}

impl FileGuard {
    /// Claims the file at `path`, or fails with [`CoreError::AlreadyOpen`].
    pub(crate) fn claim(path: &Path) -> Result<Self> {
        let path = canonical(path)?;
        let shown = path.display().to_string();
        let already = || CoreError::AlreadyOpen { path: shown.clone() };
        {
            let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
            if !open.get_or_insert_with(HashSet::new).insert(path.clone()) {
                return Err(already());
            }
        }
        // From here on, dropping the guard unregisters the path.
        let mut guard = FileGuard { path, lock: None };
        let lock_path = with_suffix(&guard.path, ".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(CoreError::File)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(already()),
            Err(std::fs::TryLockError::Error(e)) => return Err(CoreError::File(e)),
        }
        guard.lock = Some(file);
        Ok(guard)
    }

    /// The file's canonical path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the file and deletes it with every file beside it. The connection must be
    /// closed first.
    pub(crate) fn delete_files(mut self) -> Result<()> {
        if let Some(lock) = self.lock.take() {
            drop(lock);
        }
        for path in
            std::iter::once(self.path.clone()).chain(SIDECARS.iter().map(|s| with_suffix(&self.path, s)))
        {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CoreError::File(e)),
            }
        }
        Ok(())
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        // The lock goes with the file handle; the registry entry is removed here.
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = open.as_mut() {
            open.remove(&self.path);
        }
    }
}

/// Whether the file is missing or empty: opening it creates a new replica.
pub(crate) fn is_new(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true)
}

/// Says why a file that does not decrypt under `key` fails: the key, damage, or not a replica.
/// Called after SQLite answered "not a database" to the first read.
pub(crate) fn classify_unreadable(conn: &Connection, path: &Path) -> CoreError {
    let mut header = [0u8; 16];
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let read = File::open(path).and_then(|mut f| f.read(&mut header)).unwrap_or(0);
    if read == 16 && &header == b"SQLite format 3\0" {
        return CoreError::NotAReplica {
            reason: "a plain (unencrypted) SQLite database, not an encrypted replica".into(),
        };
    }
    let page: u64 = conn
        .query_row("PRAGMA cipher_page_size", [], |r| r.get::<_, i64>(0))
        .optional()
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(4096);
    // SQLCipher checks every page's HMAC under the key: if some pages check out, the key is
    // right and the others are damaged.
    let (pages, failed) = page_check(conn, size, page);
    if pages > 0 && failed < pages {
        return CoreError::DamagedFile {
            reason: format!("{failed} of {pages} pages do not decrypt (the key itself is right)"),
        };
    }
    if read == 16 && header.iter().all(|b| *b == 0) {
        // The first 16 bytes are SQLCipher's random salt: all zeroes is overwriting, not a key.
        return CoreError::DamagedFile { reason: "the file's header was overwritten with zeroes".into() };
    }
    if !size.is_multiple_of(page) {
        return CoreError::NotAReplica {
            reason: format!("{size} bytes is not a whole number of {page}-byte pages, and no page decrypts"),
        };
    }
    CoreError::WrongKey
}

/// Runs `PRAGMA cipher_integrity_check`: (pages, pages that failed).
fn page_check(conn: &Connection, size: u64, page: u64) -> (u64, u64) {
    let pages = size.div_ceil(page);
    let mut failed = std::collections::BTreeSet::new();
    let Ok(mut stmt) = conn.prepare("PRAGMA cipher_integrity_check") else { return (pages, pages) };
    let Ok(rows) = stmt.query_map([], |r| r.get::<_, String>(0)) else { return (pages, pages) };
    for row in rows.flatten() {
        match page_number(&row) {
            Some(n) => {
                failed.insert(n);
            }
            None => {
                failed.insert(0);
            }
        }
    }
    (pages, (failed.len() as u64).min(pages))
}

/// The page a `cipher_integrity_check` line names ("HMAC verification failed for page 3").
fn page_number(line: &str) -> Option<u64> {
    let after = &line[line.find("page")? + 4..];
    after.split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
}

//! A test helper, not part of the app: plants damage inside an encrypted replica file, as a
//! failing flash sector or a bug would, so the binding tests can check that the damage is found
//! and repaired (`crates/ffi/tests/python`). The app's API rightly offers no way to do this.
//!
//! ```text
//! doorstep-replica-fixture damage-document <file> <key-hex> <document-id> <n>
//! ```
//! overwrites the bytes of the document's `n`-th stored change (from 0) with zeroes.

use std::process::ExitCode;

use rusqlite::Connection;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, path, key, document, n] = args.as_slice() else {
        eprintln!("usage: doorstep-replica-fixture damage-document <file> <key-hex> <document-id> <n>");
        return ExitCode::from(2);
    };
    if command != "damage-document" || !key.chars().all(|c| c.is_ascii_hexdigit()) {
        eprintln!("unknown command or malformed key");
        return ExitCode::from(2);
    }
    let damaged = (|| -> rusqlite::Result<usize> {
        let conn = Connection::open(path)?;
        conn.execute_batch(&format!("PRAGMA key = \"x'{key}'\";"))?;
        conn.execute(
            "UPDATE changes SET bytes = zeroblob(length(bytes)) WHERE seq =
               (SELECT seq FROM changes WHERE doc_id = ?1 ORDER BY seq LIMIT 1 OFFSET ?2)",
            rusqlite::params![document, n.parse::<i64>().unwrap_or(0)],
        )
    })();
    match damaged {
        Ok(1) => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("no such stored change");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

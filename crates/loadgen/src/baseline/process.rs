//! The baseline server as a process of its own, like `doorstep-server`, so its CPU and memory
//! are read from `/proc` the same way. The load generator starts itself again with
//! `--serve-baseline` and writes every document of the county to its stdin; the child loads
//! them into a [`BaselineServer`], serves on 127.0.0.1:0 and prints `listening on http://…`.
//!
//! Stdin holds one record per document: the automerge-repo document id and the document's
//! `save()`, each as a 4-byte big-endian length and its bytes.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use doorstep_baseline::BaselineServer;
use doorstep_baseline::envelope::document_id;
use doorstep_core::ids::DocumentId;
use doorstep_server::storage::Storage;

use crate::server::ServerProcess;

/// automerge-repo's id for a Doorstep document.
pub fn repo_id(id: DocumentId) -> String {
    document_id(id.as_uuid().as_bytes())
}

/// Starts the baseline server process holding every document `storage` holds now.
pub fn start(storage: &dyn Storage) -> Result<(ServerProcess, usize)> {
    let mut input = Vec::new();
    let mut documents = 0;
    for (id, _) in storage.document_heads()? {
        let Some(mut doc) = storage.document(id)? else { continue };
        let (key, saved) = (repo_id(id), doc.save());
        for part in [key.as_bytes(), &saved] {
            input.extend((part.len() as u32).to_be_bytes());
            input.extend_from_slice(part);
        }
        documents += 1;
    }
    let exe = std::env::current_exe().context("finding the load generator's own binary")?;
    let mut command = Command::new(exe);
    command.arg("--serve-baseline");
    let process = ServerProcess::spawn(command, Some(input)).context("starting the baseline server")?;
    Ok((process, documents))
}

/// The child's side: loads the documents from stdin and serves until killed.
pub fn serve_from_stdin() -> Result<()> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let mut server = BaselineServer::default();
    let mut rest = input.as_slice();
    while !rest.is_empty() {
        let key = String::from_utf8(take_part(&mut rest)?.to_vec())?;
        let saved = take_part(&mut rest)?;
        server.load(key, saved)?;
    }
    let documents = server.len();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let addr = doorstep_baseline::server::start(Arc::new(Mutex::new(server))).await?;
        eprintln!("baseline server: {documents} documents");
        println!("listening on http://{addr}");
        std::io::stdout().flush()?;
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}

fn take_part<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8]> {
    if rest.len() < 4 {
        bail!("truncated document record");
    }
    let (len, tail) = rest.split_at(4);
    let len = u32::from_be_bytes(len.try_into().map_err(|_| anyhow!("length"))?) as usize;
    if tail.len() < len {
        bail!("truncated document record");
    }
    let (part, tail) = tail.split_at(len);
    *rest = tail;
    Ok(part)
}

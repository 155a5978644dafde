//! The held-connections scenario: many enrolled devices each keep one idle WebSocket open to
//! the server, as phones with the app open do all day. Measured: how many the server holds,
//! that every one still answers a ping after the hold, and the server's resident memory.
//!
//! Devices are enrolled through the server's storage before it starts (what `/v1/enrol` does,
//! without 10,000 HTTP round trips and replicas); the connections are real WebSockets on
//! 127.0.0.1 with each device's own token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use doorstep_server::storage::Storage;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::county::Seat;
use crate::server::ServerProcess;

/// WebSocket handshakes in flight at once while connecting.
const HANDSHAKES_IN_FLIGHT: usize = 64;

/// What the hold measured.
#[derive(Debug, Serialize)]
pub struct HoldReport {
    /// Connections asked for.
    pub devices: usize,
    /// Connections the server accepted (handshake completed).
    pub connected: usize,
    /// Connections that answered a ping after the hold.
    pub alive_after_hold: usize,
    /// Failed handshakes or pings, first few reasons.
    pub failures: Vec<String>,
    /// Seconds to open every connection.
    pub connect_seconds: f64,
    /// Seconds every connection was held idle before the ping.
    pub hold_seconds: f64,
    /// Server resident memory before the first connection, MiB.
    pub server_rss_before_mib: f64,
    /// Server resident memory with every connection open, MiB.
    pub server_rss_held_mib: f64,
    /// (held − before) ÷ connections, KiB.
    pub rss_per_connection_kib: f64,
    /// Server CPU seconds while connecting and holding.
    pub server_cpu_seconds: f64,
}

/// Enrols one device per seat straight through storage; returns each device's token.
pub fn enrol_all(storage: &dyn Storage, seats: &[Seat]) -> Result<Vec<String>> {
    let now = doorstep_server::http::now();
    let mut tokens = Vec::with_capacity(seats.len());
    for (i, seat) in seats.iter().enumerate() {
        let hash = doorstep_server::auth::hash_secret(&doorstep_server::auth::normalize_code(&seat.code));
        let token = doorstep_server::auth::new_token().map_err(|e| anyhow!("randomness: {e}"))?;
        let actor = format!("{:032x}", 0x4e1d_0000_0000_0000_u128 + i as u128);
        storage
            .enrol(&hash, &actor, &format!("held-{i}"), &token, now)
            .map_err(|e| anyhow!("enrolling device {i}: {e:?}"))?;
        tokens.push(token);
    }
    Ok(tokens)
}

/// Opens one WebSocket per token, holds them all for `hold`, pings every one, and reports.
pub async fn run(server: &ServerProcess, tokens: Vec<String>, hold: Duration) -> Result<HoldReport> {
    let ws_url = format!("{}/v1/ws", server.url.replacen("http://", "ws://", 1));
    let rss_before = server.current_rss_bytes()?;
    let cpu_before = server.cpu_seconds()?;
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT));
    let devices = tokens.len();
    let mut opening = Vec::with_capacity(devices);
    for token in tokens {
        let (gate, url) = (gate.clone(), ws_url.clone());
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| anyhow!("{e}"))?;
            let mut request = url.into_client_request().context("websocket request")?;
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().map_err(|e| anyhow!("header: {e}"))?,
            );
            let (socket, _) =
                tokio::time::timeout(Duration::from_secs(60), tokio_tungstenite::connect_async(request))
                    .await
                    .map_err(|_| anyhow!("handshake timed out"))?
                    .context("handshake")?;
            Ok::<_, anyhow::Error>(socket)
        }));
    }
    let mut sockets = Vec::with_capacity(devices);
    let mut failures = Vec::new();
    for (done, task) in opening.into_iter().enumerate() {
        match task.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(socket) => sockets.push(socket),
            Err(e) if failures.len() < 5 => failures.push(format!("{e:#}")),
            Err(_) => {}
        }
        if (done + 1) % 1000 == 0 {
            eprintln!(
                "hold: {}/{} connected, {:.1} s",
                sockets.len(),
                devices,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let connected = sockets.len();

    // Idle: nothing is sent either way. Then every connection must still answer.
    tokio::time::sleep(hold).await;
    let rss_held = server.current_rss_bytes()?;
    let mut pinging = Vec::with_capacity(connected);
    for mut socket in sockets {
        pinging.push(tokio::spawn(async move {
            socket.send(Message::Ping(b"doorstep".to_vec().into())).await.context("ping")?;
            let answer = tokio::time::timeout(Duration::from_secs(60), async {
                while let Some(message) = socket.next().await {
                    if let Message::Pong(_) = message.context("reading")? {
                        return Ok::<_, anyhow::Error>(());
                    }
                }
                Err(anyhow!("closed before answering the ping"))
            })
            .await
            .map_err(|_| anyhow!("no pong within 60 s"))?;
            answer?;
            let _ = socket.close(None).await;
            Ok::<_, anyhow::Error>(())
        }));
    }
    let mut alive = 0;
    for task in pinging {
        match task.await.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(()) => alive += 1,
            Err(e) if failures.len() < 10 => failures.push(format!("{e:#}")),
            Err(_) => {}
        }
    }
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    Ok(HoldReport {
        devices,
        connected,
        alive_after_hold: alive,
        failures,
        connect_seconds,
        hold_seconds: hold.as_secs_f64(),
        server_rss_before_mib: mib(rss_before),
        server_rss_held_mib: mib(rss_held),
        rss_per_connection_kib: if connected == 0 {
            0.0
        } else {
            (rss_held.saturating_sub(rss_before)) as f64 / 1024.0 / connected as f64
        },
        server_cpu_seconds: server.cpu_seconds()? - cpu_before,
    })
}

impl HoldReport {
    /// The summary as a table.
    pub fn table(&self) -> String {
        format!(
            "held connections\n\
             devices              {}\n\
             connected            {}\n\
             alive after hold     {}\n\
             connect time         {:.1} s\n\
             held idle            {:.1} s\n\
             server RSS before    {:.1} MiB\n\
             server RSS held      {:.1} MiB\n\
             RSS per connection   {:.1} KiB\n\
             server CPU           {:.2} s\n\
             failures             {:?}\n",
            self.devices,
            self.connected,
            self.alive_after_hold,
            self.connect_seconds,
            self.hold_seconds,
            self.server_rss_before_mib,
            self.server_rss_held_mib,
            self.rss_per_connection_kib,
            self.server_cpu_seconds,
            self.failures,
        )
    }
}

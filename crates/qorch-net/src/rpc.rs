//! Control calls over NATS: typed request and answer, of any size. NATS caps a message (1 MiB
//! by default), and a round's report or grants for a large process exceed it, so both ways
//! are cut in parts of [`PART_BYTES`] and put back together by call id.
//!
//! Frames are the protocol's [`WireCodec`] frames (version, bincode 2, CRC-32): a corrupted
//! or foreign part is an error, never a wrong answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Client;
use futures_util::StreamExt;
use qorch_protocol::WireCodec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::{Connection, NetError, RemoteError};

/// Bytes per part (well under NATS's default 1 MiB limit).
pub const PART_BYTES: usize = 256 * 1024;

/// How often a waiting call checks whether its connection was re-established.
const RESEND_CHECK: Duration = Duration::from_millis(250);

/// Copies of a request sent after a reconnection, besides the one at once (at 0.25, 0.5,
/// 1, ... 8 s).
const RESENDS: u32 = 6;

/// Bodies being put together at most (more means parts were lost).
const PARTIAL_KEPT: usize = 64;

/// Answers kept for repeated requests.
const ANSWERS_KEPT: usize = 256;

#[derive(Clone, Serialize, Deserialize)]
struct Part {
    call: u64,
    index: u32,
    total: u32,
    /// Where the answer goes (requests only).
    reply_to: String,
    bytes: Vec<u8>,
}

fn codec() -> WireCodec {
    WireCodec::with_max_frame_bytes(PART_BYTES + 4096)
}

/// Publishes `body` as parts on `subject`.
async fn send_parts(
    client: &Client,
    subject: &str,
    call: u64,
    reply_to: &str,
    body: &[u8],
) -> Result<(), NetError> {
    let chunks: Vec<&[u8]> = if body.is_empty() {
        vec![&[]]
    } else {
        body.chunks(PART_BYTES).collect()
    };
    let total = chunks.len() as u32;
    for (i, c) in chunks.into_iter().enumerate() {
        let part = Part {
            call,
            index: i as u32,
            total,
            reply_to: reply_to.to_owned(),
            bytes: c.to_vec(),
        };
        client
            .publish(subject.to_owned(), codec().encode(&part)?.into())
            .await
            .map_err(NetError::io("publish"))?;
    }
    client.flush().await.map_err(NetError::io("flush"))
}

/// Collects parts into whole bodies.
/// Parts received of one body: how many, and each by index.
type Partial = (u32, Vec<Option<Vec<u8>>>);

#[derive(Default)]
struct Assembler {
    partial: HashMap<(String, u64), Partial>,
}

impl Assembler {
    /// Adds a part; returns the whole body (and where to answer) when complete.
    fn add(&mut self, p: Part) -> Option<(u64, String, Vec<u8>)> {
        if p.total <= 1 {
            return Some((p.call, p.reply_to, p.bytes));
        }
        if p.index >= p.total {
            return None;
        }
        let key = (p.reply_to.clone(), p.call);
        if !self.partial.contains_key(&key) && self.partial.len() >= PARTIAL_KEPT {
            // Bodies whose other parts never came (their sender died): the oldest call goes.
            if let Some(old) = self.partial.keys().min_by_key(|k| k.1).cloned() {
                self.partial.remove(&old);
            }
        }
        let entry = self
            .partial
            .entry(key.clone())
            .or_insert_with(|| (0, vec![None; p.total as usize]));
        if entry.1.len() != p.total as usize {
            return None;
        }
        let slot = &mut entry.1[p.index as usize];
        if slot.is_none() {
            *slot = Some(p.bytes);
            entry.0 += 1;
        }
        if entry.0 < p.total {
            return None;
        }
        let (_, parts) = self.partial.remove(&key)?;
        let body = parts.into_iter().flatten().flatten().collect();
        Some((p.call, p.reply_to, body))
    }
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// The calling side: one reply inbox per client, answers matched by call id.
#[derive(Clone)]
pub struct RpcClient {
    client: Client,
    inbox: String,
    next: Arc<AtomicU64>,
    waiters: Waiters,
}

impl RpcClient {
    /// Subscribes a reply inbox on `connection`.
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the subscription fails.
    pub async fn new(connection: &Connection) -> Result<RpcClient, NetError> {
        let client = connection.client().clone();
        let inbox = client.new_inbox();
        let mut sub = client
            .subscribe(inbox.clone())
            .await
            .map_err(NetError::io("subscribe"))?;
        let waiters: Waiters = Arc::default();
        let w = Arc::clone(&waiters);
        tokio::spawn(async move {
            let mut asm = Assembler::default();
            while let Some(msg) = sub.next().await {
                let Ok(part) = codec().decode::<Part>(&msg.payload) else {
                    tracing::warn!("rpc: corrupted answer part ignored");
                    continue;
                };
                if let Some((call, _, body)) = asm.add(part) {
                    let tx = w
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&call);
                    if let Some(tx) = tx {
                        let _ = tx.send(body);
                    }
                }
            }
        });
        Ok(RpcClient {
            client,
            inbox,
            next: Arc::new(AtomicU64::new(1)),
            waiters,
        })
    }

    /// Sends `req` to `subject` and waits up to `timeout` for the answer.
    ///
    /// # Errors
    ///
    /// [`NetError::Timeout`] without an answer, [`NetError::Remote`] if the peer answered
    /// with an error, [`NetError::Decode`] for a corrupted answer, [`NetError::Io`].
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        subject: &str,
        req: &Q,
        timeout: Duration,
    ) -> Result<A, NetError> {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(call, tx);
        let body = WireCodec::with_max_frame_bytes(usize::MAX >> 1).encode(req)?;
        let connects = || self.client.statistics().connects.load(Ordering::Acquire);
        let mut epoch = connects();
        if let Err(e) = send_parts(&self.client, subject, call, &self.inbox, &body).await {
            self.forget(call);
            return Err(e);
        }
        // A reconnection (a server restart) may have lost the request or its answer: then
        // the request goes again, under the same call id (the server side answers a repeat
        // from its cache, or once the first is done).
        // The callee may reconnect later than this side, and miss the first copy: copies go
        // at growing intervals after each reconnection (RESENDS of them).
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = rx;
        let mut resends: Vec<tokio::time::Instant> = Vec::new();
        let bytes = loop {
            let check = tokio::time::Instant::now() + RESEND_CHECK;
            tokio::select! {
                got = &mut rx => match got {
                    Ok(b) => break b,
                    Err(_) => return Err(self.timed_out(call, subject, timeout)),
                },
                () = tokio::time::sleep_until(check.min(deadline)) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Err(self.timed_out(call, subject, timeout));
                    }
                    let c = connects();
                    if c != epoch {
                        epoch = c;
                        resends = (0..RESENDS).map(|i| now + RESEND_CHECK * (1 << i)).collect();
                        resends.insert(0, now);
                    }
                    if resends.first().is_some_and(|t| *t <= now) {
                        resends.remove(0);
                        tracing::info!(subject, "reconnected: sending the request again");
                        let _ = send_parts(&self.client, subject, call, &self.inbox, &body).await;
                    }
                }
            }
        };
        let result: Result<A, String> = WireCodec::with_max_frame_bytes(usize::MAX >> 1)
            .decode(&bytes)
            .map_err(|source| NetError::Decode {
                subject: subject.to_owned(),
                source,
            })?;
        result.map_err(|message| NetError::Remote {
            subject: subject.to_owned(),
            source: RemoteError(message),
        })
    }

    fn timed_out(&self, call: u64, subject: &str, timeout: Duration) -> NetError {
        self.forget(call);
        NetError::Timeout {
            subject: subject.to_owned(),
            timeout,
        }
    }

    fn forget(&self, call: u64) {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&call);
    }
}

/// Requests being handled and the last answers, so that a request sent again after a
/// reconnection is handled once.
#[derive(Default)]
struct Answers {
    running: std::collections::HashSet<(String, u64)>,
    done: HashMap<(String, u64), Vec<u8>>,
    order: std::collections::VecDeque<(String, u64)>,
}

/// A whole request received by [`serve`], with what is needed to answer it.
pub struct Request {
    call: u64,
    reply_to: String,
    body: Vec<u8>,
    answers: Arc<Mutex<Answers>>,
}

impl Request {
    /// The request, decoded.
    ///
    /// # Errors
    ///
    /// [`NetError::Decode`] for a corrupted or foreign request.
    pub fn decode<Q: DeserializeOwned>(&self) -> Result<Q, NetError> {
        WireCodec::with_max_frame_bytes(usize::MAX >> 1)
            .decode(&self.body)
            .map_err(|source| NetError::Decode {
                subject: self.reply_to.clone(),
                source,
            })
    }

    /// Answers it (an `Err` reaches the caller as [`NetError::Remote`]).
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if publishing fails.
    pub async fn answer<A: Serialize>(
        &self,
        connection: &Connection,
        answer: &Result<A, String>,
    ) -> Result<(), NetError> {
        let body = WireCodec::with_max_frame_bytes(usize::MAX >> 1).encode(answer)?;
        {
            let mut a = self
                .answers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = (self.reply_to.clone(), self.call);
            a.running.remove(&key);
            a.done.insert(key.clone(), body.clone());
            a.order.push_back(key);
            while a.order.len() > ANSWERS_KEPT {
                if let Some(old) = a.order.pop_front() {
                    a.done.remove(&old);
                }
            }
        }
        send_parts(connection.client(), &self.reply_to, self.call, "", &body).await
    }
}

/// Subscribes to `subject` and yields whole requests in arrival order.
///
/// # Errors
///
/// [`NetError::Io`] if the subscription fails.
pub async fn serve(
    connection: &Connection,
    subject: &str,
) -> Result<mpsc::Receiver<Request>, NetError> {
    let client = connection.client();
    let mut sub = client
        .subscribe(subject.to_owned())
        .await
        .map_err(NetError::io("subscribe"))?;
    let (tx, rx) = mpsc::channel(64);
    let client = client.clone();
    tokio::spawn(async move {
        let mut asm = Assembler::default();
        let answers: Arc<Mutex<Answers>> = Arc::default();
        while let Some(msg) = sub.next().await {
            let Ok(part) = codec().decode::<Part>(&msg.payload) else {
                tracing::warn!(subject = %msg.subject, "rpc: corrupted request part ignored");
                continue;
            };
            let Some((call, reply_to, body)) = asm.add(part) else {
                continue;
            };
            let key = (reply_to.clone(), call);
            let repeat = {
                let mut a = answers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(done) = a.done.get(&key) {
                    Some(Some(done.clone()))
                } else if a.running.contains(&key) {
                    Some(None)
                } else {
                    a.running.insert(key);
                    None
                }
            };
            match repeat {
                // Answered already: the answer may have been lost; send it again.
                Some(Some(done)) => {
                    let _ = send_parts(&client, &reply_to, call, "", &done).await;
                }
                // Being handled: its answer will come.
                Some(None) => {}
                None => {
                    let req = Request {
                        call,
                        reply_to,
                        body,
                        answers: Arc::clone(&answers),
                    };
                    if tx.send(req).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(call: u64, body: &[u8], size: usize) -> Vec<Part> {
        let chunks: Vec<&[u8]> = body.chunks(size).collect();
        let total = chunks.len() as u32;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| Part {
                call,
                index: i as u32,
                total,
                reply_to: "r".into(),
                bytes: c.to_vec(),
            })
            .collect()
    }

    #[test]
    fn parts_reassemble_in_any_order_and_duplicates_do_no_harm() {
        let body: Vec<u8> = (0..1000_u32).map(|i| (i % 251) as u8).collect();
        let mut ps = parts(7, &body, 64);
        ps.reverse();
        let dup = parts(7, &body, 64).remove(3);
        let mut asm = Assembler::default();
        let mut done = None;
        for (i, p) in ps.into_iter().enumerate() {
            if i == 2 {
                assert!(asm.add(dup.clone()).is_none());
            }
            if let Some(d) = asm.add(p) {
                done = Some(d);
            }
        }
        let (call, reply_to, got) = done.expect("complete");
        assert_eq!((call, reply_to.as_str()), (7, "r"));
        assert_eq!(got, body);
        assert!(asm.partial.is_empty());
    }
}

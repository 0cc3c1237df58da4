//! Control calls over NATS: typed request and answer, of any size. NATS caps a message (1 MiB
//! by default), and a round's report or grants for a large process exceed it, so both ways
//! are cut in parts of [`PART_BYTES`] and put back together by call id.
//!
//! Frames are the protocol's [`WireCodec`] frames (version, bincode 2, CRC-32): a corrupted
//! or foreign part is an error, never a wrong answer. Under a deployment key
//! ([`FrameKey`](crate::FrameKey)) every part carries a MAC over its subject and bytes, and
//! parts without a valid one are refused before they are decoded.
//!
//! Parts come from the network, so nothing in them is trusted as a size: a body has at most
//! [`MAX_PARTS`] parts (what the codec's largest frame needs), parts are stored as they come
//! (never a buffer sized by a part's `total`), and the bodies being put together hold at most
//! [`MAX_PARTIAL_BYTES`] at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use qorch_protocol::{MAX_FRAME_BYTES, WireCodec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::{Connection, NetError, RemoteError, TraceContext};

/// Bytes per part (well under NATS's default 1 MiB limit).
pub const PART_BYTES: usize = 256 * 1024;

/// How often a waiting call checks whether its connection was re-established.
const RESEND_CHECK: Duration = Duration::from_millis(250);

/// Copies of a request sent after a reconnection, besides the one at once (at 0.25, 0.5,
/// 1, ... 8 s).
const RESENDS: u32 = 6;

/// Bodies being put together at most (more means parts were lost).
const PARTIAL_KEPT: usize = 64;

/// Parts of one body at most: a body is one codec frame, at most [`MAX_FRAME_BYTES`].
pub const MAX_PARTS: u32 = MAX_FRAME_BYTES.div_ceil(PART_BYTES) as u32;

/// Bytes held at most in bodies being put together (the oldest are dropped beyond it).
pub const MAX_PARTIAL_BYTES: usize = 2 * MAX_FRAME_BYTES;

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
    /// The caller's trace context (requests made inside a traced round). Last, so that a
    /// part of a build without it ends early and is refused by the codec, never misread.
    trace: Option<TraceContext>,
}

fn codec() -> WireCodec {
    WireCodec::with_max_frame_bytes(PART_BYTES + 4096)
}

/// Publishes `body` as parts on `subject` (each sealed under the connection's key).
async fn send_parts(
    connection: &Connection,
    subject: &str,
    call: u64,
    reply_to: &str,
    trace: Option<TraceContext>,
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
            trace,
            bytes: c.to_vec(),
        };
        let frame = connection.seal(subject, codec().encode(&part)?);
        connection.publish(subject.to_owned(), frame).await?;
    }
    connection.flush().await
}

/// Parts received of one body: the `total` its first part announced, and each part by
/// index (as many as came, never a buffer sized by `total`).
struct Partial {
    total: u32,
    parts: HashMap<u32, Vec<u8>>,
    bytes: usize,
}

/// A whole body: its call, where to answer, the caller's trace context (its last part's).
struct Whole {
    call: u64,
    reply_to: String,
    trace: Option<TraceContext>,
    body: Vec<u8>,
}

/// Collects parts into whole bodies.
struct Assembler {
    partial: HashMap<(String, u64), Partial>,
    /// Bytes held in `partial`.
    bytes: usize,
    /// At most this many ([`MAX_PARTIAL_BYTES`]).
    limit: usize,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler {
            partial: HashMap::new(),
            bytes: 0,
            limit: MAX_PARTIAL_BYTES,
        }
    }
}

impl Assembler {
    /// Adds a part; returns the whole body (and where to answer) when complete. A part that
    /// cannot belong to a body (an index past its total, a total past [`MAX_PARTS`], a total
    /// that disagrees with the body's first part) is dropped.
    fn add(&mut self, p: Part) -> Option<Whole> {
        if p.index >= p.total || p.total > MAX_PARTS || p.bytes.len() > PART_BYTES {
            tracing::warn!(
                index = p.index,
                total = p.total,
                bytes = p.bytes.len(),
                "rpc: impossible part dropped"
            );
            return None;
        }
        if p.total == 1 {
            return Some(Whole {
                call: p.call,
                reply_to: p.reply_to,
                trace: p.trace,
                body: p.bytes,
            });
        }
        let key = (p.reply_to.clone(), p.call);
        if !self.partial.contains_key(&key) && self.partial.len() >= PARTIAL_KEPT {
            // Bodies whose other parts never came (their sender died): the oldest call goes.
            self.drop_oldest();
        }
        while self.bytes + p.bytes.len() > self.limit && !self.partial.is_empty() {
            self.drop_oldest();
        }
        let entry = self.partial.entry(key.clone()).or_insert_with(|| Partial {
            total: p.total,
            parts: HashMap::new(),
            bytes: 0,
        });
        if entry.total != p.total {
            return None;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = entry.parts.entry(p.index) {
            entry.bytes += p.bytes.len();
            self.bytes += p.bytes.len();
            slot.insert(p.bytes);
        }
        if entry.parts.len() < p.total as usize {
            return None;
        }
        let done = self.partial.remove(&key)?;
        self.bytes -= done.bytes;
        let mut body = Vec::with_capacity(done.bytes);
        for i in 0..done.total {
            body.extend_from_slice(done.parts.get(&i)?);
        }
        Some(Whole {
            call: p.call,
            reply_to: p.reply_to,
            trace: p.trace,
            body,
        })
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.partial.keys().min_by_key(|k| k.1).cloned()
            && let Some(gone) = self.partial.remove(&old)
        {
            self.bytes -= gone.bytes;
        }
    }
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// The calling side: one reply inbox per client, answers matched by call id.
#[derive(Clone)]
pub struct RpcClient {
    connection: Connection,
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
        let inbox = connection.client().new_inbox();
        let mut sub = connection
            .client()
            .subscribe(inbox.clone())
            .await
            .map_err(NetError::io("subscribe"))?;
        let waiters: Waiters = Arc::default();
        let w = Arc::clone(&waiters);
        let conn = connection.clone();
        tokio::spawn(async move {
            let mut asm = Assembler::default();
            while let Some(msg) = sub.next().await {
                let Some(frame) = conn.open(&msg.subject, &msg.payload) else {
                    continue;
                };
                let Ok(part) = codec().decode::<Part>(frame) else {
                    tracing::warn!("rpc: corrupted answer part ignored");
                    continue;
                };
                if let Some(Whole { call, body, .. }) = asm.add(part) {
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
            connection: connection.clone(),
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
        self.call_traced(subject, req, timeout, None).await
    }

    /// [`call`](Self::call), with the caller's trace context in every part's header (the
    /// callee finds it in [`Request::trace`]).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn call_traced<Q: Serialize, A: DeserializeOwned>(
        &self,
        subject: &str,
        req: &Q,
        timeout: Duration,
        trace: Option<TraceContext>,
    ) -> Result<A, NetError> {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(call, tx);
        let body = WireCodec::with_max_frame_bytes(usize::MAX >> 1).encode(req)?;
        let connects = || {
            self.connection
                .client()
                .statistics()
                .connects
                .load(Ordering::Acquire)
        };
        let mut epoch = connects();
        if let Err(e) = send_parts(&self.connection, subject, call, &self.inbox, trace, &body).await
        {
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
                        let _ = send_parts(
                            &self.connection, subject, call, &self.inbox, trace, &body,
                        )
                        .await;
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
    trace: Option<TraceContext>,
    body: Vec<u8>,
    answers: Arc<Mutex<Answers>>,
}

impl Request {
    /// The caller's trace context, if it made the call inside a traced round
    /// ([`RpcClient::call_traced`]).
    pub fn trace(&self) -> Option<TraceContext> {
        self.trace
    }

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
        send_parts(connection, &self.reply_to, self.call, "", None, &body).await
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
    let mut sub = connection
        .client()
        .subscribe(subject.to_owned())
        .await
        .map_err(NetError::io("subscribe"))?;
    let (tx, rx) = mpsc::channel(64);
    let connection = connection.clone();
    tokio::spawn(async move {
        let mut asm = Assembler::default();
        let answers: Arc<Mutex<Answers>> = Arc::default();
        while let Some(msg) = sub.next().await {
            let Some(frame) = connection.open(&msg.subject, &msg.payload) else {
                continue;
            };
            let Ok(part) = codec().decode::<Part>(frame) else {
                tracing::warn!(subject = %msg.subject, "rpc: corrupted request part ignored");
                continue;
            };
            let Some(Whole {
                call,
                reply_to,
                trace,
                body,
            }) = asm.add(part)
            else {
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
                    let _ = send_parts(&connection, &reply_to, call, "", None, &done).await;
                }
                // Being handled: its answer will come.
                Some(None) => {}
                None => {
                    let req = Request {
                        call,
                        reply_to,
                        trace,
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
                trace: Some(TRACE),
                bytes: c.to_vec(),
            })
            .collect()
    }

    const TRACE: TraceContext = TraceContext {
        trace_id: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
        span_id: 0xb7ad_6b71_6920_3331,
    };

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
        let whole = done.expect("complete");
        assert_eq!((whole.call, whole.reply_to.as_str()), (7, "r"));
        assert_eq!(whole.body, body);
        // The caller's trace context comes with the body.
        assert_eq!(whole.trace, Some(TRACE));
        assert!(asm.partial.is_empty());
    }

    fn part(call: u64, index: u32, total: u32, bytes: Vec<u8>) -> Part {
        Part {
            call,
            index,
            total,
            reply_to: "r".into(),
            trace: None,
            bytes,
        }
    }

    #[test]
    fn a_part_without_the_trace_header_is_a_decode_error() {
        // A part as builds before the trace context wrote it.
        #[derive(Serialize)]
        struct OldPart {
            call: u64,
            index: u32,
            total: u32,
            reply_to: String,
            bytes: Vec<u8>,
        }
        for body in [vec![], vec![1], vec![1; 40]] {
            let old = OldPart {
                call: 3,
                index: 0,
                total: 1,
                reply_to: "r".into(),
                bytes: body,
            };
            let frame = codec().encode(&old).unwrap();
            assert!(codec().decode::<Part>(&frame).is_err());
        }
    }

    #[test]
    fn forged_totals_and_indices_allocate_nothing() {
        let mut asm = Assembler::default();
        // A total of u32::MAX used to size a buffer of 100 GB: now it is refused outright.
        assert!(asm.add(part(1, 0, u32::MAX, vec![1])).is_none());
        assert!(asm.add(part(1, u32::MAX - 1, u32::MAX, vec![1])).is_none());
        assert!(asm.add(part(1, 5, 3, vec![1])).is_none());
        assert!(asm.add(part(1, 0, 0, vec![])).is_none());
        assert!(asm.add(part(1, 0, 2, vec![0; PART_BYTES + 1])).is_none());
        assert!(asm.partial.is_empty());
        // The largest legitimate total is accepted, and holds only what came.
        assert!(asm.add(part(2, 0, MAX_PARTS, vec![7; 10])).is_none());
        assert_eq!((asm.partial.len(), asm.bytes), (1, 10));
        // A part that disagrees with its body's total is dropped.
        assert!(asm.add(part(2, 1, 2, vec![7; 10])).is_none());
        assert_eq!(asm.bytes, 10);
    }

    #[test]
    fn bodies_being_put_together_are_bounded_in_number_and_bytes() {
        let mut asm = Assembler::default();
        for call in 0..(PARTIAL_KEPT as u64 * 3) {
            assert!(asm.add(part(call, 0, 2, vec![1; 16])).is_none());
        }
        assert_eq!(asm.partial.len(), PARTIAL_KEPT);
        let mut asm = Assembler {
            limit: 1000,
            ..Assembler::default()
        };
        for call in 0..40 {
            assert!(asm.add(part(call, 0, MAX_PARTS, vec![0; 300])).is_none());
            assert!(asm.bytes <= 1000, "{} bytes held", asm.bytes);
        }
        assert_eq!(asm.partial.len(), 3);
        // The newest body survives the evictions and completes.
        assert!(asm.add(part(99, 1, 2, vec![2])).is_none());
        assert_eq!(asm.add(part(99, 0, 2, vec![1])).unwrap().body, vec![1, 2]);
        assert_eq!(asm.bytes, 900);
    }

    proptest::proptest! {
        /// Arbitrary bytes as a sealed part: refused by the MAC or by the codec, never a
        /// panic; a forged part that decodes is bounded by the assembler.
        #[test]
        fn arbitrary_bytes_never_panic_the_receiving_side(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let key = crate::FrameKey::new("fuzz-key-0123456789abcdef").unwrap();
            proptest::prop_assert!(key.open("q.ctl.node.a", &bytes).is_none());
            let mut asm = Assembler::default();
            if let Ok(p) = codec().decode::<Part>(&bytes) {
                let _ = asm.add(p);
            }
            proptest::prop_assert!(asm.bytes <= MAX_PARTIAL_BYTES);
        }

        /// Structured mutations: parts with any call, index, total and size, in any order.
        #[test]
        fn forged_parts_keep_the_assembler_bounded(
            parts in proptest::collection::vec(
                (0..4_u64, proptest::prelude::any::<u32>(), proptest::prelude::any::<u32>(), 0..64_usize),
                0..200,
            ),
        ) {
            let mut asm = Assembler { limit: 4096, ..Assembler::default() };
            for (call, index, total, len) in parts {
                // Small totals often, so that bodies complete too.
                let total = if total % 2 == 0 { total % 4 } else { total };
                let index = if index % 2 == 0 { index % 4 } else { index };
                if let Some(whole) = asm.add(part(call, index, total, vec![1; len])) {
                    proptest::prop_assert!(whole.body.len() <= 4 * 64);
                }
                proptest::prop_assert!(asm.bytes <= 4096);
                proptest::prop_assert!(asm.partial.len() <= PARTIAL_KEPT);
                let held: usize = asm.partial.values().map(|p| p.bytes).sum();
                proptest::prop_assert_eq!(held, asm.bytes);
            }
        }

        /// A sealed, encoded part survives the trip; any flipped bit is refused.
        #[test]
        fn sealed_parts_round_trip_and_resist_bit_flips(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            flip in proptest::prelude::any::<usize>(),
        ) {
            let key = crate::FrameKey::new("fuzz-key-0123456789abcdef").unwrap();
            // The trace context is in the header, under the MAC like the body.
            let traced = Part { trace: Some(TRACE), ..part(1, 0, 1, body.clone()) };
            let sealed = key.seal("s", codec().encode(&traced).unwrap());
            let back: Part = codec().decode(key.open("s", &sealed).unwrap()).unwrap();
            proptest::prop_assert_eq!(back.bytes, body);
            proptest::prop_assert_eq!(back.trace, Some(TRACE));
            let mut bad = sealed.clone();
            let i = flip % bad.len();
            bad[i] ^= 1 << (flip % 8);
            proptest::prop_assert!(key.open("s", &bad).is_none());
        }
    }
}

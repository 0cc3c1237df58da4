//! Heartbeats on the control connection: each process publishes `<prefix>.hb.<process>`
//! every interval; a [`Membership`] watches them and says who has been silent too long. A
//! missing heartbeat is how a killed process is detected (it sends no goodbye).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use qorch_protocol::WireCodec;
use serde::{Deserialize, Serialize};

use crate::{Connection, NetError, Subjects};

/// The largest heartbeat frame read (a process name and a counter).
const MAX_BEAT_BYTES: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Beat {
    process: String,
    seq: u64,
}

/// Publishes this process's heartbeat every `interval` until the returned task is aborted
/// (or the process dies, which is the point).
pub fn beacon(
    control: &Connection,
    subjects: &Subjects,
    process: &str,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let subject = subjects.heartbeat(process);
    let process = process.to_owned();
    let control = control.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        let mut seq = 0_u64;
        loop {
            tick.tick().await;
            seq += 1;
            let beat = Beat {
                process: process.clone(),
                seq,
            };
            if let Ok(bytes) = WireCodec::default().encode(&beat) {
                // A failed publish (server restarting) is simply a missed beat.
                let sealed = control.seal(&subject, bytes);
                let _ = control.publish(subject.clone(), sealed).await;
            }
        }
    })
}

/// Who has sent a heartbeat, and when last.
#[derive(Clone, Default)]
pub struct Membership {
    seen: Arc<Mutex<BTreeMap<String, (Instant, u64)>>>,
}

impl Membership {
    /// Watches every heartbeat of the deployment.
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the subscription fails.
    pub async fn watch(control: &Connection, subjects: &Subjects) -> Result<Membership, NetError> {
        let mut sub = control
            .client()
            .subscribe(subjects.heartbeats())
            .await
            .map_err(NetError::io("subscribe"))?;
        let m = Membership::default();
        let seen = Arc::clone(&m.seen);
        let control = control.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(frame) = control.open(&msg.subject, &msg.payload) else {
                    continue;
                };
                // A beat counts for the process its subject names, only: a process cannot
                // keep another alive, and the map holds at most one entry per subject.
                let Ok(b) = WireCodec::with_max_frame_bytes(MAX_BEAT_BYTES).decode::<Beat>(frame)
                else {
                    continue;
                };
                if msg.subject.rsplit('.').next() != Some(b.process.as_str()) {
                    continue;
                }
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(b.process, (Instant::now(), b.seq));
            }
        });
        Ok(m)
    }

    /// Processes heard from, with the time since their last heartbeat.
    pub fn members(&self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(p, (t, _))| (p.clone(), now.duration_since(*t)))
            .collect()
    }

    /// Whether `process` was heard from within `timeout`.
    pub fn alive(&self, process: &str, timeout: Duration) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(process)
            .is_some_and(|(t, _)| t.elapsed() < timeout)
    }
}

//! The join protocol: a process waiting for work announces itself on `<prefix>.ctl.join`
//! ([`Announcer`], every [`ANNOUNCE_EVERY`]) until it is given some; a coordinator gathers
//! the announcements ([`Gathering`]) until it has the processes it needs.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use qorch_protocol::WireCodec;
use serde::{Deserialize, Serialize};

use crate::{Connection, NetError, Subjects, Subscription};

/// How often a waiting process announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(250);

/// The control subject's suffix of announcements.
const JOIN: &str = "join";

/// A process's announcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Announcement {
    name: String,
    pid: u32,
}

/// Announces one process (named `name`, this process's id) to whoever gathers.
#[derive(Debug, Clone)]
pub struct Announcer {
    connection: Connection,
    subject: String,
    bytes: Bytes,
}

impl Announcer {
    /// The announcements of process `name` on `connection`.
    ///
    /// # Errors
    ///
    /// [`NetError::Encode`] if the announcement cannot be encoded.
    pub fn new(
        connection: &Connection,
        subjects: &Subjects,
        name: &str,
    ) -> Result<Announcer, NetError> {
        let a = Announcement {
            name: name.to_owned(),
            pid: std::process::id(),
        };
        let subject = subjects.control(JOIN);
        let bytes = connection.seal(&subject, WireCodec::default().encode(&a)?);
        Ok(Announcer {
            connection: connection.clone(),
            subject,
            bytes: bytes.into(),
        })
    }

    /// Announces once. A failed publish (the server restarting) is a missed announcement:
    /// the next one goes [`ANNOUNCE_EVERY`] later.
    pub async fn announce(&self) {
        let _ = self
            .connection
            .publish(self.subject.clone(), self.bytes.clone())
            .await;
    }
}

/// The processes that announced themselves, by name (sorted).
#[derive(Debug)]
pub struct Gathering {
    connection: Connection,
    announcements: Subscription,
    names: BTreeSet<String>,
}

/// The largest announcement read (a process name and an id).
const MAX_ANNOUNCEMENT_BYTES: usize = 1024;

impl Gathering {
    /// Starts listening to announcements on `connection`.
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the subscription fails.
    pub async fn open(connection: &Connection, subjects: &Subjects) -> Result<Gathering, NetError> {
        Ok(Gathering {
            connection: connection.clone(),
            announcements: connection.subscribe(subjects.control(JOIN)).await?,
            names: BTreeSet::new(),
        })
    }

    /// Gathers for `window` (processes already waiting announce every [`ANNOUNCE_EVERY`]).
    pub async fn listen(&mut self, window: Duration) {
        let until = tokio::time::Instant::now() + window;
        while let Ok(Some(d)) = tokio::time::timeout_at(until, self.announcements.next()).await {
            self.take(&d.subject, &d.payload);
        }
    }

    /// Forgets all but the first `n` names (in name order).
    pub fn keep_first(&mut self, n: usize) {
        while self.names.len() > n {
            self.names.pop_last();
        }
    }

    /// Gathers until `n` processes have announced themselves, for at most `timeout`;
    /// returns whether they have.
    pub async fn wait_for(&mut self, n: usize, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        while self.names.len() < n {
            match tokio::time::timeout_at(until, self.announcements.next()).await {
                Ok(Some(d)) => self.take(&d.subject, &d.payload),
                _ => return false,
            }
        }
        true
    }

    /// The processes gathered so far, in name order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// How many processes have announced themselves.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Announcements refused so far for a missing or invalid MAC (processes without this
    /// deployment's key).
    pub fn refused(&self) -> u64 {
        self.connection.refused_frames()
    }

    fn take(&mut self, subject: &str, payload: &[u8]) {
        let Some(frame) = self.connection.open(subject, payload) else {
            return;
        };
        let codec = WireCodec::with_max_frame_bytes(MAX_ANNOUNCEMENT_BYTES);
        // Names become subjects: one that is not a subject token is refused here.
        if let Ok(a) = codec.decode::<Announcement>(frame)
            && crate::valid_process_name(&a.name)
        {
            self.names.insert(a.name);
        }
    }
}

//! [`NatsRegistry`]: the runtime's named registry shared by every process of a deployment,
//! kept in a `JetStream` stream used as a key-value bucket (the server runs with `JetStream`:
//! `nats-server -js`).
//!
//! A name is a subject of the stream (`$KV.<bucket>.<key>`, the layout NATS key-value buckets
//! use); its last message holds the agent's id and the full name of the message type it
//! accepts, and a delete marker frees it. Claims are conditional publishes (the expected last
//! sequence of the subject), so two processes that claim one name at once cannot both win;
//! releases delete only the entry they saw, so a process never frees a name another one has
//! claimed since.
//!
//! It speaks the `JetStream` API directly (stream create, direct get, conditional publish),
//! which every server since 2.9 answers alike.

use std::fmt::Write as _;
use std::time::Duration;

use async_nats::HeaderMap;
use qorch_protocol::AgentId;
use qorch_runtime::{BoxFuture, RegistryError, SharedRegistry};

use crate::{Connection, NetError};

/// How long one request to the server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The registry of a NATS deployment: pass it to `RuntimeBuilder::registry` in every
/// process.
///
/// Each process frees the names of its agents that terminate; names of a process that dies
/// stay until someone unregisters them (a lookup then names an agent that is not running,
/// which an ask reports as `AskError::NotRunning` or a timeout).
#[derive(Clone)]
pub struct NatsRegistry {
    client: async_nats::Client,
    bucket: String,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for NatsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsRegistry")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// A name's current entry.
struct Entry {
    agent: AgentId,
    type_name: String,
}

/// What the stream holds last for a name.
enum Last {
    /// Nothing ever.
    Never,
    /// A delete marker at this sequence (the name is free).
    Freed(u64),
    /// An entry at this sequence.
    Held(Entry, u64),
}

impl NatsRegistry {
    /// Opens (or creates) the registry bucket `bucket` on the connection's server. Call it
    /// inside a tokio runtime: background releases run there.
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the server has no `JetStream` (start it with `-js`) or does not
    /// answer, [`NetError::Remote`] if it refuses the bucket (or its name is invalid).
    pub async fn open(connection: &Connection, bucket: &str) -> Result<NatsRegistry, NetError> {
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(NetError::Remote {
                subject: format!("$JS.API.STREAM.CREATE.KV_{bucket}"),
                source: crate::RemoteError(format!(
                    "a registry bucket is named with letters, digits, - and _, not {bucket:?}"
                )),
            });
        }
        let client = connection.client().clone();
        let config = serde_json::json!({
            "name": format!("KV_{bucket}"),
            "subjects": [format!("$KV.{bucket}.>")],
            "retention": "limits",
            "max_msgs_per_subject": 1,
            "discard": "new",
            "storage": "file",
            "num_replicas": 1,
            "allow_rollup_hdrs": true,
            "deny_delete": true,
            "allow_direct": true,
        });
        let reply = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.request(
                format!("$JS.API.STREAM.CREATE.KV_{bucket}"),
                config.to_string().into(),
            ),
        )
        .await
        .map_err(|_| NetError::io("create the registry bucket")(TimedOut))?
        .map_err(NetError::io(
            "create the registry bucket (is JetStream on?)",
        ))?;
        let answer: serde_json::Value = serde_json::from_slice(&reply.payload)
            .map_err(NetError::io("read the bucket's creation"))?;
        // 10058: a stream of that name exists already (another process made it).
        if let Some(e) = answer.get("error")
            && e.get("err_code").and_then(serde_json::Value::as_u64) != Some(10058)
        {
            return Err(NetError::Remote {
                subject: format!("$JS.API.STREAM.CREATE.KV_{bucket}"),
                source: crate::RemoteError(format!("the server refused the registry bucket: {e}")),
            });
        }
        Ok(NatsRegistry {
            client,
            bucket: bucket.to_owned(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    fn subject(&self, key: &str) -> String {
        format!("$KV.{}.{key}", self.bucket)
    }

    async fn request(
        &self,
        subject: String,
        headers: Option<HeaderMap>,
        payload: bytes::Bytes,
    ) -> Result<async_nats::Message, RegistryError> {
        let call = async {
            match headers {
                Some(h) => self.client.request_with_headers(subject, h, payload).await,
                None => self.client.request(subject, payload).await,
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .map_err(|_| RegistryError::Remote("the NATS server did not answer".into()))?
            .map_err(|e| RegistryError::Remote(e.to_string()))
    }

    /// The last message the stream holds for `key`.
    async fn last(&self, key: &str) -> Result<Last, RegistryError> {
        let m = self
            .request(
                format!(
                    "$JS.API.DIRECT.GET.KV_{}.{}",
                    self.bucket,
                    self.subject(key)
                ),
                None,
                bytes::Bytes::new(),
            )
            .await?;
        if m.status.is_some_and(|s| s.as_u16() == 404) {
            return Ok(Last::Never);
        }
        let headers = m.headers.unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        let seq: u64 = header("Nats-Sequence")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RegistryError::Remote("a registry entry without a sequence".into()))?;
        if matches!(header("KV-Operation").as_deref(), Some("DEL" | "PURGE")) {
            return Ok(Last::Freed(seq));
        }
        match decode(&m.payload) {
            Some((agent, type_name)) => Ok(Last::Held(Entry { agent, type_name }, seq)),
            // Not ours: treat the name as held by nobody we know, and refuse to overwrite it.
            None => Err(RegistryError::Remote(format!(
                "the registry entry of {key:?} is not qorch's"
            ))),
        }
    }

    /// Publishes on `key` if its last sequence is still `expected`; whether it was.
    async fn publish_if(
        &self,
        key: &str,
        expected: u64,
        delete: bool,
        payload: bytes::Bytes,
    ) -> Result<bool, RegistryError> {
        let mut h = HeaderMap::new();
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        if delete {
            h.insert("KV-Operation", "DEL");
        }
        let ack = self.request(self.subject(key), Some(h), payload).await?;
        let answer: serde_json::Value = serde_json::from_slice(&ack.payload)
            .map_err(|e| RegistryError::Remote(format!("an unreadable acknowledgement: {e}")))?;
        match answer.get("error") {
            None => Ok(true),
            // 10071: wrong last sequence (someone else wrote first).
            Some(e) if e.get("err_code").and_then(serde_json::Value::as_u64) == Some(10071) => {
                Ok(false)
            }
            Some(e) => Err(RegistryError::Remote(e.to_string())),
        }
    }

    async fn claim(
        &self,
        name: &str,
        agent: AgentId,
        type_name: &str,
    ) -> Result<(), RegistryError> {
        let key = key(name)?;
        // A few rounds: each lost race re-reads who holds the name.
        for _ in 0..4 {
            let expected = match self.last(&key).await? {
                Last::Held(e, _) if e.agent == agent && e.type_name == type_name => return Ok(()),
                Last::Held(e, _) => {
                    return Err(RegistryError::Taken {
                        name: name.to_owned(),
                        holder: e.agent,
                    });
                }
                Last::Never => 0,
                Last::Freed(seq) => seq,
            };
            if self
                .publish_if(&key, expected, false, value(agent, type_name))
                .await?
            {
                return Ok(());
            }
        }
        Err(RegistryError::Remote(format!(
            "the name {name:?} changed hands too often to claim"
        )))
    }

    async fn release(&self, name: &str, agent: AgentId) -> Result<bool, RegistryError> {
        let key = key(name)?;
        match self.last(&key).await? {
            Last::Held(e, seq) if e.agent == agent => {
                self.publish_if(&key, seq, true, bytes::Bytes::new()).await
            }
            _ => Ok(false),
        }
    }
}

/// The stream-level time-out, as an error with a message.
#[derive(Debug)]
struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the NATS server did not answer")
    }
}

impl std::error::Error for TimedOut {}

/// A name as a key: letters, digits, `-` and `_` stay; every other byte becomes `=XX`.
fn key(name: &str) -> Result<String, RegistryError> {
    if name.is_empty() || name.len() > 256 {
        return Err(RegistryError::Remote(format!(
            "a shared name has 1 to 256 bytes, not {}",
            name.len()
        )));
    }
    let mut k = String::with_capacity(name.len() + 2);
    k.push('n');
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            k.push(char::from(b));
        } else {
            let _ = write!(k, "={b:02X}");
        }
    }
    Ok(k)
}

fn value(agent: AgentId, type_name: &str) -> bytes::Bytes {
    format!("{}\n{type_name}", agent.0).into()
}

/// Decodes a value; `None` for one this crate did not write.
fn decode(v: &[u8]) -> Option<(AgentId, String)> {
    let s = std::str::from_utf8(v).ok()?;
    let (id, ty) = s.split_once('\n')?;
    Some((AgentId(id.parse().ok()?), ty.to_owned()))
}

impl SharedRegistry for NatsRegistry {
    fn register<'a>(
        &'a self,
        name: &'a str,
        agent: AgentId,
        type_name: &'a str,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(self.claim(name, agent, type_name))
    }

    fn unregister<'a>(
        &'a self,
        name: &'a str,
        agent: AgentId,
    ) -> BoxFuture<'a, Result<bool, RegistryError>> {
        Box::pin(self.release(name, agent))
    }

    fn lookup<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<(AgentId, String)>, RegistryError>> {
        Box::pin(async move {
            let key = key(name)?;
            Ok(match self.last(&key).await? {
                Last::Held(e, _) => Some((e.agent, e.type_name)),
                Last::Never | Last::Freed(_) => None,
            })
        })
    }

    fn forget(&self, agent: AgentId, names: Vec<String>) {
        let this = self.clone();
        self.runtime.spawn(async move {
            for name in names {
                if let Err(e) = this.release(&name, agent).await {
                    tracing::warn!(%name, agent = agent.0, error = %e, "a shared name was not freed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_valid_keys_and_values_round_trip() {
        assert_eq!(key("counter").unwrap(), "ncounter");
        assert_eq!(key("a b/ü").unwrap(), "na=20b=2F=C3=BC");
        assert!(key("").is_err());
        assert_eq!(
            decode(&value(AgentId(7), "my::Msg")),
            Some((AgentId(7), "my::Msg".to_owned()))
        );
        assert_eq!(decode(b"garbage"), None);
    }
}

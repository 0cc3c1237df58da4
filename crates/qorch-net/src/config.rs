//! Where the NATS server is and how to authenticate: URL, credentials and TLS, and the
//! connections made from them. Secrets never reach a log line or an error message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions};

use crate::error::NatsError;
use crate::{Connection, FrameKey, NetError};

/// How to reach the NATS server.
#[derive(Clone, Default)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated (`nats://127.0.0.1:4222`).
    pub url: String,
    /// Subject prefix of this deployment: several runs can share one server.
    pub prefix: String,
    /// A `.creds` file (JWT + nkey seed), as `nsc` writes them.
    pub credentials_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU...`).
    pub nkey_file: Option<PathBuf>,
    /// User name (with [`password`](Self::password)).
    pub user: Option<String>,
    /// Password of [`user`](Self::user); never printed.
    pub password: Option<String>,
    /// An authentication token; never printed.
    pub token: Option<String>,
    /// Refuse a connection without TLS.
    pub require_tls: bool,
    /// CA certificate (PEM) to verify the server with.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// How long the first connection may take.
    pub connect_timeout: Duration,
    /// The deployment key: with one, control frames and a gateway's data frames and
    /// acknowledgements are sealed with a MAC, and frames without a valid one are refused
    /// (see [`FrameKey`]). `None`: unauthenticated.
    pub frame_key: Option<FrameKey>,
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("credentials_file", &self.credentials_file)
            .field("nkey_file", &self.nkey_file)
            .field("user", &self.user)
            .field("password", &hidden(&self.password))
            .field("token", &hidden(&self.token))
            .field("require_tls", &self.require_tls)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client", &self.tls_client)
            .field("connect_timeout", &self.connect_timeout)
            .field("frame_key", &self.frame_key)
            .finish()
    }
}

/// The URL with any `user:password@` part replaced, for messages.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}<redacted>@{}", &u[..s + 3], &u[at + 1..]),
            (None, Some(at)) => format!("<redacted>@{}", &u[at + 1..]),
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The URL list without user info, and the user info of the first URL that has some
/// (`user:password` or a token).
fn split_userinfo(url: &str) -> (String, Option<(String, Option<String>)>) {
    let mut found = None;
    let clean = url
        .split(',')
        .map(|u| {
            let start = u.find("://").map_or(0, |s| s + 3);
            let end = u[start..].find('/').map_or(u.len(), |e| start + e);
            match u[start..end].rfind('@') {
                Some(at) => {
                    let info = &u[start..start + at];
                    if found.is_none() {
                        found = Some(match info.split_once(':') {
                            Some((user, pass)) => (user.to_owned(), Some(pass.to_owned())),
                            None => (info.to_owned(), None),
                        });
                    }
                    format!("{}{}", &u[..start], &u[start + at + 1..])
                }
                None => u.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    (clean, found)
}

impl NatsConfig {
    /// A configuration for `url` with the default prefix (`qorch`) and no authentication.
    pub fn new(url: impl Into<String>) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            prefix: "qorch".into(),
            connect_timeout: Duration::from_secs(5),
            ..NatsConfig::default()
        }
    }

    /// Checks what can be checked before connecting: a URL, a prefix that is one NATS token
    /// sequence (no spaces or wildcards), one authentication method, files that exist.
    ///
    /// # Errors
    ///
    /// [`NetError::Config`] saying what is wrong.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.url.trim().is_empty() {
            return Err(NetError::Config("the NATS URL is empty".into()));
        }
        if self.prefix.is_empty()
            || self
                .prefix
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>', ' ', '\t']))
        {
            return Err(NetError::Config(format!(
                "subject prefix {:?} must be dot-separated tokens without spaces or wildcards",
                self.prefix
            )));
        }
        let methods = [
            self.credentials_file.is_some(),
            self.nkey_file.is_some(),
            self.user.is_some(),
            self.token.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if methods > 1 {
            return Err(NetError::Config(
                "choose one authentication method: credentials file, nkey, user/password or token"
                    .into(),
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(NetError::Config(
                "a NATS user needs a password and a password needs a user".into(),
            ));
        }
        for f in self
            .credentials_file
            .iter()
            .chain(&self.nkey_file)
            .chain(&self.tls_ca)
            .chain(self.tls_client.iter().flat_map(|(c, k)| [c, k]))
        {
            if !f.is_file() {
                return Err(NetError::Config(format!(
                    "{} is not a readable file",
                    f.display()
                )));
            }
        }
        Ok(())
    }

    async fn options(&self, name: &str) -> Result<ConnectOptions, NetError> {
        let mut o = match &self.credentials_file {
            Some(f) => ConnectOptions::with_credentials_file(f)
                .await
                .map_err(|e| NetError::ConfigFile {
                    what: "credentials file",
                    path: f.display().to_string(),
                    source: e,
                })?,
            None => ConnectOptions::new(),
        };
        if let Some(f) = &self.nkey_file {
            let seed = std::fs::read_to_string(f).map_err(|e| NetError::ConfigFile {
                what: "nkey file",
                path: f.display().to_string(),
                source: e,
            })?;
            o = o.nkey(seed.trim().to_owned());
        }
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            o = o.user_and_password(u.clone(), p.clone());
        }
        if let Some(t) = &self.token {
            o = o.token(t.clone());
        }
        // Credentials in the URL (`nats://user:password@host`, `nats://token@host`) are
        // taken out of it here: the client library never sees them, so it cannot log them.
        let no_other_auth = self.credentials_file.is_none()
            && self.nkey_file.is_none()
            && self.user.is_none()
            && self.token.is_none();
        if let (true, (_, Some((user, pass)))) = (no_other_auth, split_userinfo(&self.url)) {
            o = match pass {
                Some(p) => o.user_and_password(user, p),
                None => o.token(user),
            };
        }
        if self.require_tls {
            o = o.require_tls(true);
        }
        if let Some(ca) = &self.tls_ca {
            o = o.add_root_certificates(ca.clone());
        }
        if let Some((c, k)) = &self.tls_client {
            o = o.add_client_certificate(c.clone(), k.clone());
        }
        Ok(o.name(name)
            .connection_timeout(self.connect_timeout)
            // Reconnect forever after the first connection: a server restart is survived.
            .max_reconnects(None)
            .event_callback(|e| async move {
                tracing::info!(event = %e, "nats");
            }))
    }

    /// Opens one connection named `name` (`<process>/<purpose>`: data and control traffic
    /// use separate connections, so control never queues behind data).
    ///
    /// The first connection must succeed: a wrong address, a refused authentication or a
    /// TLS failure is an error at once (never retried, never hidden). Later disconnections
    /// are retried forever.
    ///
    /// # Errors
    ///
    /// [`NetError::Config`], [`NetError::Auth`], [`NetError::Tls`] or [`NetError::Connect`].
    pub async fn connect(&self, name: &str) -> Result<Connection, NetError> {
        self.validate()?;
        let options = self.options(name).await?;
        let url = redact_url(&self.url);
        let (bare, _) = split_userinfo(&self.url);
        options
            .connect(bare.as_str())
            .await
            .map(|client| Connection::new(client, self.frame_key.clone()))
            .map_err(|e| match e.kind() {
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                    NetError::Auth {
                        url,
                        source: NatsError::new(e),
                    }
                }
                ConnectErrorKind::Tls => NetError::Tls {
                    url,
                    source: NatsError::new(e),
                },
                _ => {
                    let lower = e.to_string().to_ascii_lowercase();
                    if lower.contains("certificate") || lower.contains("tls") {
                        NetError::Tls {
                            url,
                            source: NatsError::new(e),
                        }
                    } else {
                        NetError::Connect {
                            url,
                            source: NatsError::new(e),
                        }
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets_in_messages() {
        assert_eq!(
            redact_url("nats://alice:s3cret@127.0.0.1:4222"),
            "nats://<redacted>@127.0.0.1:4222"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_url("tok@h:1,nats://h2:2"),
            "<redacted>@h:1,nats://h2:2"
        );
        let c = NatsConfig {
            password: Some("hunter2".into()),
            user: Some("u".into()),
            ..NatsConfig::new("nats://u:hunter2@h:4222")
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn user_info_is_taken_out_of_urls() {
        assert_eq!(
            split_userinfo("nats://alice:s3cret@h:4222,nats://h2:1"),
            (
                "nats://h:4222,nats://h2:1".to_owned(),
                Some(("alice".to_owned(), Some("s3cret".to_owned())))
            )
        );
        assert_eq!(
            split_userinfo("tok@h:1"),
            ("h:1".to_owned(), Some(("tok".to_owned(), None)))
        );
        assert_eq!(
            split_userinfo("nats://h:1"),
            ("nats://h:1".to_owned(), None)
        );
    }

    #[test]
    fn bad_configurations_are_refused_before_connecting() {
        let mut c = NatsConfig::new("nats://127.0.0.1:4222");
        c.prefix = "a.*".into();
        assert!(matches!(c.validate(), Err(NetError::Config(m)) if m.contains("prefix")));
        let mut c = NatsConfig::new("nats://127.0.0.1:4222");
        c.user = Some("u".into());
        assert!(matches!(c.validate(), Err(NetError::Config(m)) if m.contains("password")));
        let mut c = NatsConfig::new("nats://127.0.0.1:4222");
        c.token = Some("t".into());
        c.user = Some("u".into());
        c.password = Some("p".into());
        assert!(
            matches!(c.validate(), Err(NetError::Config(m)) if m.contains("one authentication"))
        );
        let mut c = NatsConfig::new("nats://127.0.0.1:4222");
        c.credentials_file = Some("/nonexistent/x.creds".into());
        assert!(
            matches!(c.validate(), Err(NetError::Config(m)) if m.contains("not a readable file"))
        );
        assert!(NatsConfig::new(" ").validate().is_err());
    }
}

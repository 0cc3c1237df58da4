//! The NATS options shared by `qorch node` and `qorch simulate --nats`. Secrets come from
//! the environment (`QORCH_NATS_URL` for a URL with `user:password@`, `QORCH_NATS_PASSWORD`,
//! `QORCH_NATS_TOKEN`, `QORCH_FRAME_KEY`) or from files, never from the command line, where
//! other users could read them (`ps`, `/proc/<pid>/cmdline`).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args as ClapArgs;
use qorch_net::{FrameKey, NatsConfig};

/// Environment variable holding the password of `--nats-user`.
pub(crate) const PASSWORD_ENV: &str = "QORCH_NATS_PASSWORD";
/// Environment variable holding an authentication token.
pub(crate) const TOKEN_ENV: &str = "QORCH_NATS_TOKEN";
/// Environment variable holding the server URL (instead of `--nats`: a URL with
/// `user:password@` belongs there, not on the command line).
pub(crate) const URL_ENV: &str = "QORCH_NATS_URL";
/// Environment variable holding the deployment key of control frames.
pub(crate) const KEY_ENV: &str = "QORCH_FRAME_KEY";

/// How to reach the NATS server.
#[derive(ClapArgs, Debug, Clone, Default)]
#[allow(
    clippy::doc_markdown,
    reason = "these comments are the --help text, shown as written"
)]
pub(crate) struct NatsArgs {
    /// NATS server URL (nats://host:4222; several comma-separated). A URL with
    /// user:password@ belongs in QORCH_NATS_URL, out of sight of `ps`.
    #[arg(long, value_name = "URL", env = URL_ENV, hide_env_values = true)]
    pub(crate) nats: Option<String>,
    /// Subject prefix of this deployment (several runs can share a server).
    #[arg(long, value_name = "PREFIX", default_value = "qorch")]
    pub(crate) nats_prefix: String,
    /// NATS credentials file (.creds: JWT and nkey seed).
    #[arg(long, value_name = "FILE")]
    pub(crate) nats_creds: Option<PathBuf>,
    /// File holding an nkey seed.
    #[arg(long, value_name = "FILE")]
    pub(crate) nats_nkey: Option<PathBuf>,
    /// User name; the password is read from QORCH_NATS_PASSWORD. (A token is read from
    /// QORCH_NATS_TOKEN.)
    #[arg(long, value_name = "USER")]
    pub(crate) nats_user: Option<String>,
    /// Refuse to connect without TLS.
    #[arg(long)]
    pub(crate) nats_tls: bool,
    /// CA certificate (PEM) to verify the server.
    #[arg(long, value_name = "FILE")]
    pub(crate) nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (with --nats-key).
    #[arg(long, value_name = "FILE", requires = "nats_key")]
    pub(crate) nats_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS (with --nats-cert).
    #[arg(long, value_name = "FILE", requires = "nats_cert")]
    pub(crate) nats_key: Option<PathBuf>,
    /// File holding the deployment key that authenticates control frames (at least 16
    /// bytes; or the key itself in QORCH_FRAME_KEY). Every process of a run needs the same.
    #[arg(long, value_name = "FILE")]
    pub(crate) frame_key_file: Option<PathBuf>,
}

impl NatsArgs {
    /// The connection settings (`None` without `--nats`).
    pub(crate) fn config(&self) -> anyhow::Result<Option<NatsConfig>> {
        let Some(url) = &self.nats else {
            return Ok(None);
        };
        let mut c = NatsConfig::new(url.clone());
        c.prefix.clone_from(&self.nats_prefix);
        c.credentials_file.clone_from(&self.nats_creds);
        c.nkey_file.clone_from(&self.nats_nkey);
        c.user.clone_from(&self.nats_user);
        if c.user.is_some() {
            match std::env::var(PASSWORD_ENV) {
                Ok(p) => c.password = Some(p),
                Err(_) => bail!("--nats-user needs the password in {PASSWORD_ENV}"),
            }
        }
        c.token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        c.require_tls = self.nats_tls;
        c.frame_key = self.frame_key()?;
        c.tls_ca.clone_from(&self.nats_ca);
        if let (Some(cert), Some(key)) = (&self.nats_cert, &self.nats_key) {
            c.tls_client = Some((cert.clone(), key.clone()));
        }
        c.validate()?;
        Ok(Some(c))
    }

    /// The deployment key: from `--frame-key-file`, else from `QORCH_FRAME_KEY`.
    fn frame_key(&self) -> anyhow::Result<Option<FrameKey>> {
        if let Some(path) = &self.frame_key_file {
            return Ok(Some(FrameKey::from_file(path)?));
        }
        match std::env::var(KEY_ENV) {
            Ok(text) if !text.is_empty() => Ok(Some(FrameKey::new(&text)?)),
            _ => Ok(None),
        }
    }

    /// The same options as arguments, for child processes: none of them secret. The URL
    /// (which may hold a password) and the deployment key travel in the children's
    /// environment instead (see `node_spawner`); the password and token variables are
    /// inherited.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_owned());
                a.push(v);
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        push("--nats-prefix", Some(self.nats_prefix.clone()));
        push("--nats-creds", path(&self.nats_creds));
        push("--nats-nkey", path(&self.nats_nkey));
        push("--nats-user", self.nats_user.clone());
        push("--nats-ca", path(&self.nats_ca));
        push("--nats-cert", path(&self.nats_cert));
        push("--nats-key", path(&self.nats_key));
        if self.nats_tls {
            a.push("--nats-tls".into());
        }
        a
    }
}

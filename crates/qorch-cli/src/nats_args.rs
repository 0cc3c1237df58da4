//! The NATS options shared by `qorch node` and `qorch simulate --nats`. Secrets come from
//! the environment (`QORCH_NATS_PASSWORD`, `QORCH_NATS_TOKEN`), never from the command line,
//! where other users could read them.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args as ClapArgs;
use qorch_net::NatsConfig;

/// Environment variable holding the password of `--nats-user`.
pub(crate) const PASSWORD_ENV: &str = "QORCH_NATS_PASSWORD";
/// Environment variable holding an authentication token.
pub(crate) const TOKEN_ENV: &str = "QORCH_NATS_TOKEN";

/// How to reach the NATS server.
#[derive(ClapArgs, Debug, Clone, Default)]
#[allow(
    clippy::doc_markdown,
    reason = "these comments are the --help text, shown as written"
)]
pub(crate) struct NatsArgs {
    /// NATS server URL (nats://host:4222; several comma-separated).
    #[arg(long, value_name = "URL")]
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
        c.tls_ca.clone_from(&self.nats_ca);
        if let (Some(cert), Some(key)) = (&self.nats_cert, &self.nats_key) {
            c.tls_client = Some((cert.clone(), key.clone()));
        }
        c.validate()?;
        Ok(Some(c))
    }

    /// The same options as arguments, for child processes (secrets travel in their
    /// inherited environment).
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_owned());
                a.push(v);
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        push("--nats", self.nats.clone());
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

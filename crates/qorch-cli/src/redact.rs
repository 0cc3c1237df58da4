//! The log on stderr, with no secret in it at any level.
//!
//! Two guards, so that neither alone has to be perfect:
//!
//! * The NATS client library (`async_nats`) logs the server address, `user:password@`
//!   included, at debug level while it connects. Its events below [`NATS_CLIENT_LEVEL`] are
//!   never recorded, whatever `RUST_LOG` asks for (`RUST_LOG=trace` included).
//! * Every line is written through [`Redacting`], which replaces the user info of any URL
//!   (`scheme://user:password@host` -> `scheme://<redacted>@host`) before it reaches
//!   stderr.

use std::io::{self, Write};

use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The most detailed level recorded from the NATS client library.
pub(crate) const NATS_CLIENT_LEVEL: Level = Level::WARN;

/// What the log keeps running until the command ends: the OTLP exporter, whose drop sends
/// the last spans.
pub(crate) struct Telemetry {
    #[cfg(feature = "otlp")]
    _otlp: Option<crate::otlp::Otlp>,
}

/// Installs the subscriber: warnings and errors on stderr, more with `RUST_LOG` (for
/// instance `RUST_LOG=info`), never the NATS client's connection details; with the `otlp`
/// feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans exported over OTLP too (see
/// [`otlp`](crate::otlp)). `command` names the subcommand in the exported spans' resource.
///
/// # Errors
/// An OTLP variable that is set but unusable.
pub(crate) fn init_logging(command: &'static str) -> anyhow::Result<Telemetry> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(Redacting)
        .with_filter(env);
    #[cfg(feature = "otlp")]
    let (otlp_layer, otlp) = match crate::otlp::layer(command)? {
        Some((layer, otlp)) => (Some(layer), Some(otlp)),
        None => (None, None),
    };
    #[cfg(not(feature = "otlp"))]
    let (otlp_layer, _) = (None::<tracing_subscriber::layer::Identity>, command);
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(otlp_layer)
        .with(filter_fn(|meta| {
            !meta.target().starts_with("async_nats") || *meta.level() <= NATS_CLIENT_LEVEL
        }))
        .try_init();
    Ok(Telemetry {
        #[cfg(feature = "otlp")]
        _otlp: otlp,
    })
}

/// A writer to stderr that redacts URLs' user info line by line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Redacting;

impl<'a> MakeWriter<'a> for Redacting {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(Vec::new())
    }
}

/// One event's text, written to stderr redacted when dropped (the formatter writes an
/// event in pieces).
pub(crate) struct RedactingWriter(Vec<u8>);

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = redact_userinfo(&String::from_utf8_lossy(&self.0));
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}

/// `text` with the user info of every `scheme://user[:password]@host` replaced by
/// `<redacted>`, and the value of every `password: Some("...")` (a URL's `Debug` form).
pub(crate) fn redact_userinfo(text: &str) -> String {
    redact_debug_passwords(&redact_urls(text))
}

fn redact_debug_passwords(text: &str) -> String {
    const FIELD: &str = "password: Some(\"";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(FIELD) {
        let (head, tail) = rest.split_at(i + FIELD.len());
        out.push_str(head);
        out.push_str("<redacted>");
        rest = tail.find("\")").map_or("", |end| &tail[end..]);
    }
    out.push_str(rest);
    out
}

fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#', whitespace or quote; user info is
        // what comes before its last '@'.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '>' | ')' | ',')
                    || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("<redacted>");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_userinfo;

    #[test]
    fn user_info_is_redacted_wherever_a_url_appears() {
        for (input, want) in [
            (
                "server=nats://alice:s3cret@127.0.0.1:4222 x",
                "server=nats://<redacted>@127.0.0.1:4222 x",
            ),
            (
                r#"addr: ServerAddr(Url { serialization: "nats://u:p@h:1", .. })"#,
                r#"addr: ServerAddr(Url { serialization: "nats://<redacted>@h:1", .. })"#,
            ),
            (
                "tls://tok@h:1/x and nats://h:2",
                "tls://<redacted>@h:1/x and nats://h:2",
            ),
            ("no url here, a@b", "no url here, a@b"),
            ("nats://h:4222", "nats://h:4222"),
            ("trailing ://", "trailing ://"),
            ("nats://a:b@c@d:1", "nats://<redacted>@d:1"),
            (
                r#"Url { username: "u", password: Some("pw"), host: Some(Domain("h")) }"#,
                r#"Url { username: "u", password: Some("<redacted>"), host: Some(Domain("h")) }"#,
            ),
        ] {
            assert_eq!(redact_userinfo(input), want, "{input}");
        }
    }
}

//! Spans out over OTLP (the `otlp` feature): OpenTelemetry's exporter over HTTP with
//! protobuf bodies, switched on by the standard variables.
//!
//! * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL, `.../v1/traces`) or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL; `/v1/traces` is appended) turns export on.
//!   Neither set: nothing is installed, and spans cost what they cost without it.
//! * `QORCH_OTLP_FILTER` chooses the spans exported, in `RUST_LOG`'s syntax: `info` by
//!   default (rounds, their collection and delivery, the scheduler's run, the control calls
//!   of a distributed round); `debug` adds levels and sub-solves; `trace` adds the sampled
//!   message spans.
//! * `OTEL_SERVICE_NAME` (default `qorch`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*` and
//!   `OTEL_EXPORTER_OTLP_HEADERS` / `_TIMEOUT` mean what the specification says.
//!
//! Only spans are exported, not events: a log line can quote what the redacting writer of
//! [`redact`](crate::redact) exists to hide. The [`TraceBridge`] installed here makes a
//! distributed round's spans one tree across processes: the coordinator sends its span's
//! OpenTelemetry ids in the control frames, and each node's span adopts them as its parent.

use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use qorch_net::{TraceBridge, TraceContext};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::registry::LookupSpan;

/// The variables that switch export on, the signal's own first.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// How long the last spans may take to leave when the command ends.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why export could not start: the command stops before doing anything.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OtlpError {
    /// A variable holds something that is not a usable value.
    #[error("{var}={value:?} is not usable: {why}")]
    Variable {
        /// The variable.
        var: &'static str,
        /// Its value, cut to 80 characters, user info redacted.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// The exporter refused its configuration.
    #[error("the OTLP exporter could not be built: {0}")]
    Build(String),
}

/// The running exporter: dropping it sends the spans still buffered.
pub(crate) struct Otlp {
    provider: SdkTracerProvider,
}

impl Drop for Otlp {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            eprintln!("warning: OTLP export: the last spans may be lost: {e}");
        }
    }
}

/// The endpoint variable that is set, and its value, if any.
fn endpoint() -> Option<(&'static str, String)> {
    ENDPOINT_VARS.iter().find_map(|&var| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (var, v))
    })
}

/// Checks an endpoint before the exporter sees it: an `http` URL with a host. (The
/// exporter would accept more and fail at the first export, once per batch, in the log.)
fn check_endpoint(var: &'static str, value: &str) -> Result<(), OtlpError> {
    let bad = |why: &str| OtlpError::Variable {
        var,
        value: crate::redact::redact_userinfo(&qorch_qubo::quote(value)),
        why: why.to_owned(),
    };
    if value.starts_with("https://") {
        return Err(bad(
            "this build exports over plain http only (no TLS client); put a collector on the \
             same host or network and point at it with http://",
        ));
    }
    let Some(rest) = value.strip_prefix("http://") else {
        return Err(bad("expected an http:// URL, e.g. http://127.0.0.1:4318"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(bad(
            "expected http://HOST[:PORT][/PATH], with no user info (headers go in \
             OTEL_EXPORTER_OTLP_HEADERS)",
        ));
    }
    Ok(())
}

/// The exporter's layer, and the exporter to keep until the command ends; `None` where no
/// endpoint variable is set. `command` names the subcommand in the resource
/// (`process.command`).
pub(crate) fn layer<S>(
    command: &'static str,
) -> Result<Option<(impl Layer<S> + Send + Sync + 'static, Otlp)>, OtlpError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let Some((var, value)) = endpoint() else {
        return Ok(None);
    };
    check_endpoint(var, &value)?;
    let filter = match std::env::var("QORCH_OTLP_FILTER") {
        Ok(f) if !f.trim().is_empty() => {
            EnvFilter::try_new(&f).map_err(|e| OtlpError::Variable {
                var: "QORCH_OTLP_FILTER",
                value: qorch_qubo::quote(&f),
                why: e.to_string(),
            })?
        }
        _ => EnvFilter::new("info"),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| OtlpError::Build(e.to_string()))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) {
        resource = resource.with_service_name("qorch");
    }
    let resource = resource
        .with_attributes([
            KeyValue::new("process.pid", i64::from(std::process::id())),
            KeyValue::new("process.command", command),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("qorch");
    // Spans only (see the module's note on events), at the levels the filter lets through.
    #[expect(
        clippy::redundant_closure_for_method_calls,
        reason = "`Metadata::is_span` names one lifetime; `filter_fn` needs any"
    )]
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter)
        .with_filter(filter_fn(|meta| meta.is_span()));
    let _ = qorch_net::set_trace_bridge(Box::new(Bridge));
    Ok(Some((layer, Otlp { provider })))
}

/// OpenTelemetry's span ids in qorch's control frames.
struct Bridge;

impl TraceBridge for Bridge {
    fn context_of(&self, span: &tracing::Span) -> Option<TraceContext> {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() {
            return None;
        }
        Some(TraceContext {
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        })
    }

    fn adopt(&self, span: &tracing::Span, parent: TraceContext) {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.span_id.to_be_bytes()),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        // A span the exporter does not record (filtered out) has no parent to set.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_before_export_starts() {
        let v = "OTEL_EXPORTER_OTLP_ENDPOINT";
        assert!(check_endpoint(v, "http://127.0.0.1:4318").is_ok());
        assert!(check_endpoint(v, "http://collector/v1/traces").is_ok());
        for bad in [
            "127.0.0.1:4318",
            "grpc://x",
            "https://collector:4318",
            "http://",
            "http://user:pw@host:4318",
        ] {
            let e = check_endpoint(v, bad).unwrap_err().to_string();
            assert!(e.contains(v), "{e}");
            assert!(!e.contains("pw@"), "the error quotes no password: {e}");
        }
    }
}

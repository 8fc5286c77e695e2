//! One-line setup from the standard `OTEL_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use skein::logs::Severity;
use skein::propagation::percent_decode;
use skein::{AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, Sampler, TraceIdRatioSampler};

use crate::otlp::{OtlpGrpcExporter, OtlpHttpExporter, Protocol};
use crate::{
    BatchConfig, ConfigError, ConsoleExporter, ConsoleFormat, ExportGuard, ExportPipeline, LogExporter, LogPipeline,
    Resource, Signal,
};

/// Installs the export pipelines the environment describes — spans and log records — and
/// returns their guard:
///
/// - `OTEL_SDK_DISABLED=true`: nothing is recorded or logged;
/// - `OTEL_TRACES_EXPORTER` and `OTEL_LOGS_EXPORTER`: `otlp` (default), `console`
///   (`SKEIN_CONSOLE_FORMAT=json` for one JSON line per activity or record) or `none`;
/// - `OTEL_EXPORTER_OTLP_{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE}`, each
///   overridden per signal by `OTEL_EXPORTER_OTLP_TRACES_*` and `OTEL_EXPORTER_OTLP_LOGS_*`;
/// - `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`; `OTEL_SERVICE_NAME`,
///   `OTEL_RESOURCE_ATTRIBUTES` (one resource for both signals); `OTEL_BSP_*` (spans) and
///   `OTEL_BLRP_*` (logs);
/// - `SKEIN_LOGS_MIN_SEVERITY` (`trace`, `debug`, `info` — the default —, `warn`, `error`):
///   the least severe log records exported.
///
/// Log records come from logging libraries through [`skein::logs`]: add
/// `skein_tracing::layer()` to the `tracing` subscriber and every `tracing` event (and `log`
/// record, through `tracing-log`) is exported with its trace and span ids.
///
/// A value that cannot work (an unknown exporter or protocol, a malformed endpoint, a ratio
/// outside 0..=1) is an error here rather than a pipeline that silently exports nothing.
pub fn init() -> Result<ExportGuard, ConfigError> {
    init_from(|name| std::env::var(name).ok())
}

/// Where one signal goes, from `OTEL_{TRACES,LOGS}_EXPORTER`.
enum Destination {
    Nowhere,
    Console(ConsoleFormat),
    Otlp(Box<Otlp>),
}

/// An OTLP exporter of either transport (both export spans and logs).
enum Otlp {
    Http(OtlpHttpExporter),
    Grpc(OtlpGrpcExporter),
}

pub(crate) fn init_from(var: impl Fn(&str) -> Option<String>) -> Result<ExportGuard, ConfigError> {
    let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(ExportPipeline::new().with_sampler(AlwaysOffSampler).install());
    }
    let sampler_name = var("OTEL_TRACES_SAMPLER");
    let sampler = sampler_from(sampler_name.as_deref(), var("OTEL_TRACES_SAMPLER_ARG").as_deref())?;
    // Always-off is answered inline by the pipeline.
    let sampler = (sampler_name.as_deref() != Some("always_off")).then_some(sampler);
    let span_batch = BatchConfig::from_lookup("OTEL_BSP", BatchConfig::default(), var)?;
    let log_batch = BatchConfig::from_lookup("OTEL_BLRP", BatchConfig::for_logs(), var)?;
    let min_severity = match var("SKEIN_LOGS_MIN_SEVERITY") {
        None => Severity::INFO,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "trace" => Severity::TRACE,
            "debug" => Severity::DEBUG,
            "info" => Severity::INFO,
            "warn" | "warning" => Severity::WARN,
            "error" => Severity::ERROR,
            "fatal" => Severity::FATAL,
            _ => {
                return Err(ConfigError::variable(
                    "SKEIN_LOGS_MIN_SEVERITY",
                    &v,
                    "trace, debug, info, warn, error or fatal",
                ))
            }
        },
    };
    let resource = Resource::from_vars(
        var("OTEL_SERVICE_NAME").as_deref(),
        var("OTEL_RESOURCE_ATTRIBUTES").as_deref(),
    );
    // Both signals are checked before either is installed: a mistake in one is not half a setup.
    let traces = destination(&var, Signal::Traces, &resource)?;
    let logs = destination(&var, Signal::Logs, &resource)?;
    let spans = match traces {
        Destination::Nowhere => ExportPipeline::new().with_sampler(AlwaysOffSampler).install(),
        Destination::Console(format) => ExportPipeline::new()
            .with_configured_sampler(sampler)
            .batch(ConsoleExporter::new(format), span_batch)
            .install(),
        Destination::Otlp(otlp) => {
            let pipeline = ExportPipeline::new().with_configured_sampler(sampler);
            match *otlp {
                Otlp::Http(e) => pipeline.batch(e, span_batch).install(),
                Otlp::Grpc(e) => pipeline.batch(e, span_batch).install(),
            }
        }
    };
    let logs: Option<Box<dyn LogExporter>> = match logs {
        Destination::Nowhere => None,
        Destination::Console(format) => Some(Box::new(ConsoleExporter::new(format))),
        Destination::Otlp(otlp) => match *otlp {
            Otlp::Http(e) => Some(Box::new(e)),
            Otlp::Grpc(e) => Some(Box::new(e)),
        },
    };
    Ok(match logs {
        Some(exporter) => spans.with_logs(
            LogPipeline::new(exporter)
                .with_batch_config(log_batch)
                .with_min_severity(min_severity)
                .install(),
        ),
        None => spans,
    })
}

fn destination(
    var: &impl Fn(&str) -> Option<String>,
    signal: Signal,
    resource: &Resource,
) -> Result<Destination, ConfigError> {
    let name = match signal {
        Signal::Logs => "OTEL_LOGS_EXPORTER",
        _ => "OTEL_TRACES_EXPORTER",
    };
    Ok(match var(name).as_deref().unwrap_or("otlp") {
        "none" => Destination::Nowhere,
        "console" => Destination::Console(match var("SKEIN_CONSOLE_FORMAT").as_deref() {
            None | Some("tree") => ConsoleFormat::Tree,
            Some("json") => ConsoleFormat::JsonLines,
            Some(other) => return Err(ConfigError::variable("SKEIN_CONSOLE_FORMAT", other, "tree or json")),
        }),
        "otlp" => Destination::Otlp(Box::new(otlp_from(var, signal, resource.clone())?)),
        other => return Err(ConfigError::variable(name, other, "otlp, console or none")),
    })
}

fn otlp_from(var: &impl Fn(&str) -> Option<String>, signal: Signal, resource: Resource) -> Result<Otlp, ConfigError> {
    let upper = signal.as_str().to_ascii_uppercase();
    // The signal's own variable, else the general one; with the name it came from.
    let setting = |suffix: &str| {
        let specific = format!("OTEL_EXPORTER_OTLP_{upper}_{suffix}");
        let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
        var(&specific)
            .map(|v| (specific, v))
            .or_else(|| var(&general).map(|v| (general, v)))
    };
    let protocol = match setting("PROTOCOL") {
        Some((name, p)) => {
            Protocol::parse(&p).map_err(|_| ConfigError::variable(&name, &p, "grpc, http/protobuf or http/json"))?
        }
        None => Protocol::HttpProtobuf,
    };
    let certificate = match setting("CERTIFICATE") {
        Some((_, path)) => {
            Some(std::fs::read(&path).map_err(|e| ConfigError::certificate(Some(PathBuf::from(&path)), e))?)
        }
        None => None,
    };
    let headers = match setting("HEADERS") {
        Some((name, headers)) => parse_headers(&name, &headers)?,
        None => Vec::new(),
    };
    let timeout = match setting("TIMEOUT") {
        Some((name, t)) => {
            Some(Duration::from_millis(t.parse().map_err(|_| {
                ConfigError::variable(&name, &t, "a number of milliseconds")
            })?))
        }
        None => None,
    };
    let gzip = match setting("COMPRESSION") {
        None => false,
        Some((_, c)) if c == "none" => false,
        Some((_, c)) if c == "gzip" => true,
        Some((name, other)) => return Err(ConfigError::variable(&name, &other, "gzip or none")),
    };
    let specific_endpoint = var(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"));
    if protocol == Protocol::Grpc {
        // gRPC endpoints have no signal path.
        let endpoint = specific_endpoint
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .unwrap_or_else(|| "http://localhost:4317".to_owned());
        let mut exporter = match &certificate {
            Some(pem) => OtlpGrpcExporter::with_ca(&endpoint, resource, pem)?,
            None => OtlpGrpcExporter::new(&endpoint, resource)?,
        };
        for (name, value) in &headers {
            exporter = exporter.with_header(name, value)?;
        }
        if let Some(timeout) = timeout {
            exporter = exporter.with_timeout(timeout);
        }
        return Ok(Otlp::Grpc(exporter.with_gzip(gzip)));
    }
    // The signal-specific endpoint is used as is; the general one gets the signal path.
    let path = format!("v1/{}", signal.as_str());
    let endpoint = match specific_endpoint {
        Some(e) => e,
        None => match var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(base) => format!("{}/{path}", base.trim_end_matches('/')),
            None => format!("http://localhost:4318/{path}"),
        },
    };
    let mut exporter = match &certificate {
        Some(pem) => OtlpHttpExporter::with_ca(&endpoint, protocol, resource, pem)?,
        None => OtlpHttpExporter::new(&endpoint, protocol, resource)?,
    };
    for (name, value) in &headers {
        exporter = exporter.with_header(name, value)?;
    }
    if let Some(timeout) = timeout {
        exporter = exporter.with_timeout(timeout);
    }
    Ok(Otlp::Http(exporter.with_gzip(gzip)))
}

/// `name=value,name2=value2`, values percent-encoded.
fn parse_headers(variable: &str, headers: &str) -> Result<Vec<(String, String)>, ConfigError> {
    headers
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::variable(variable, headers, "name=value pairs separated by commas"))?;
            let value = percent_decode(value.trim()).ok_or_else(|| ConfigError::Header {
                name: name.trim().to_owned(),
                reason: "bad percent-encoding in the value",
            })?;
            Ok((name.trim().to_owned(), value))
        })
        .collect()
}

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` describe (default:
/// parent-based always-on).
pub fn sampler_from_env() -> Result<Box<dyn Sampler>, ConfigError> {
    sampler_from(
        std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
        std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
    )
}

fn sampler_from(name: Option<&str>, arg: Option<&str>) -> Result<Box<dyn Sampler>, ConfigError> {
    let ratio = || -> Result<TraceIdRatioSampler, ConfigError> {
        let arg = arg.map(str::trim).unwrap_or("1.0");
        match arg.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(TraceIdRatioSampler::new(r)),
            _ => Err(ConfigError::variable(
                "OTEL_TRACES_SAMPLER_ARG",
                arg,
                "a ratio from 0 to 1",
            )),
        }
    };
    Ok(match name.map(str::trim).unwrap_or("parentbased_always_on") {
        "always_on" => Box::new(AlwaysOnSampler),
        "always_off" => Box::new(AlwaysOffSampler),
        "traceidratio" => Box::new(ratio()?),
        "parentbased_always_on" => Box::new(ParentBasedSampler::new(AlwaysOnSampler)),
        "parentbased_always_off" => Box::new(ParentBasedSampler::new(AlwaysOffSampler)),
        "parentbased_traceidratio" => Box::new(ParentBasedSampler::new(ratio()?)),
        other => {
            return Err(ConfigError::variable(
                "OTEL_TRACES_SAMPLER",
                other,
                "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn error(pairs: &[(&str, &str)]) -> ConfigError {
        match init_from(vars(pairs)) {
            Ok(_) => panic!("expected an error for {pairs:?}"),
            Err(e) => e,
        }
    }

    /// The variable a [`ConfigError::Variable`] names.
    fn variable(pairs: &[(&str, &str)]) -> String {
        match error(pairs) {
            ConfigError::Variable { name, .. } => name,
            other => panic!("expected a variable error for {pairs:?}, got {other:?}"),
        }
    }

    #[test]
    fn misconfiguration_is_a_clear_error_naming_the_variable() {
        assert_eq!(variable(&[("OTEL_TRACES_EXPORTER", "zipkin")]), "OTEL_TRACES_EXPORTER");
        assert_eq!(variable(&[("OTEL_LOGS_EXPORTER", "syslog")]), "OTEL_LOGS_EXPORTER");
        assert_eq!(
            variable(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")]),
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        );
        assert_eq!(
            variable(&[("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/xml")]),
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
        );
        assert!(matches!(
            error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")]),
            ConfigError::Endpoint { .. }
        ));
        let ftp = error(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/v1/traces")]);
        assert!(ftp.to_string().contains("http or https"), "{ftp}");
        assert_eq!(
            variable(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5")
            ]),
            "OTEL_TRACES_SAMPLER_ARG"
        );
        assert_eq!(variable(&[("OTEL_TRACES_SAMPLER", "sometimes")]), "OTEL_TRACES_SAMPLER");
        assert_eq!(
            variable(&[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")]),
            "OTEL_BSP_MAX_QUEUE_SIZE"
        );
        assert_eq!(
            variable(&[("OTEL_BLRP_SCHEDULE_DELAY", "soon")]),
            "OTEL_BLRP_SCHEDULE_DELAY"
        );
        assert_eq!(
            variable(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]),
            "OTEL_EXPORTER_OTLP_COMPRESSION"
        );
        assert_eq!(
            variable(&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]),
            "OTEL_EXPORTER_OTLP_HEADERS"
        );
        assert_eq!(
            variable(&[("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "soon")]),
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"
        );
        assert_eq!(
            variable(&[("SKEIN_LOGS_MIN_SEVERITY", "loud")]),
            "SKEIN_LOGS_MIN_SEVERITY"
        );
        let missing = error(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")]);
        assert!(matches!(&missing, ConfigError::Certificate { path: Some(_), .. }));
        assert!(
            std::error::Error::source(&missing).is_some(),
            "the io error is kept as the source"
        );
    }

    #[test]
    fn valid_configurations_install() {
        for pairs in [
            &[("OTEL_TRACES_EXPORTER", "none")][..],
            &[("OTEL_TRACES_EXPORTER", "none"), ("OTEL_LOGS_EXPORTER", "console")][..],
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
                ("SKEIN_LOGS_MIN_SEVERITY", "debug"),
            ][..],
            &[("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "zipkin")][..],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%20b,other=1"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ][..],
        ] {
            let guard = init_from(vars(pairs)).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
            guard.shutdown(Duration::from_secs(5)).unwrap();
        }
    }
}

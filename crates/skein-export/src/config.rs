//! One-line setup from the standard `OTEL_*` environment variables.

use std::time::Duration;

use skein::propagation::percent_decode;
use skein::{AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, Sampler, TraceIdRatioSampler};

use crate::otlp::{OtlpGrpcExporter, OtlpHttpExporter, Protocol};
use crate::{
    ActivityExporter, BatchConfig, ConfigError, ConsoleExporter, ConsoleFormat, ExportGuard, ExportPipeline, Resource,
};

/// Installs the export pipeline the environment describes and returns its guard:
///
/// - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: nothing is recorded;
/// - `OTEL_TRACES_EXPORTER`: `otlp` (default) or `console` (`SKEIN_CONSOLE_FORMAT=json` for
///   one JSON line per activity);
/// - `OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT,COMPRESSION,CERTIFICATE}`;
/// - `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`; `OTEL_SERVICE_NAME`,
///   `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_BSP_*`.
///
/// A value that cannot work (an unknown exporter or protocol, a malformed endpoint, a ratio
/// outside 0..=1) is an error here rather than a pipeline that silently exports nothing.
pub fn init() -> Result<ExportGuard, ConfigError> {
    init_from(|name| std::env::var(name).ok())
}

pub(crate) fn init_from(var: impl Fn(&str) -> Option<String>) -> Result<ExportGuard, ConfigError> {
    let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(ExportPipeline::new().with_sampler(AlwaysOffSampler).install());
    }
    let sampler = sampler_from(
        var("OTEL_TRACES_SAMPLER").as_deref(),
        var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
    )?;
    let batch = BatchConfig::from_lookup(|k| var(k))?;
    let resource = Resource::from_vars(
        var("OTEL_SERVICE_NAME").as_deref(),
        var("OTEL_RESOURCE_ATTRIBUTES").as_deref(),
    );
    let exporter: Box<dyn ActivityExporter> = match var("OTEL_TRACES_EXPORTER").as_deref().unwrap_or("otlp") {
        "none" => return Ok(ExportPipeline::new().with_sampler(AlwaysOffSampler).install()),
        "console" => {
            let format = match var("SKEIN_CONSOLE_FORMAT").as_deref() {
                None | Some("tree") => ConsoleFormat::Tree,
                Some("json") => ConsoleFormat::JsonLines,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "SKEIN_CONSOLE_FORMAT={other:?}: expected tree or json"
                    )))
                }
            };
            Box::new(ConsoleExporter::new(format))
        }
        "otlp" => otlp_from(&var, resource)?,
        other => {
            return Err(ConfigError(format!(
                "OTEL_TRACES_EXPORTER={other:?}: expected otlp, console or none"
            )))
        }
    };
    Ok(ExportPipeline::new()
        .with_boxed_sampler(sampler)
        .batch_boxed(exporter, batch)
        .install())
}

fn otlp_from(
    var: &impl Fn(&str) -> Option<String>,
    resource: Resource,
) -> Result<Box<dyn ActivityExporter>, ConfigError> {
    let traces_or_general = |suffix: &str| {
        var(&format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}")).or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
    };
    let protocol = match traces_or_general("PROTOCOL") {
        Some(p) => Protocol::parse(&p)?,
        None => Protocol::HttpProtobuf,
    };
    let certificate = match traces_or_general("CERTIFICATE") {
        Some(path) => Some(
            std::fs::read(&path).map_err(|e| ConfigError(format!("cannot read the OTLP certificate {path:?}: {e}")))?,
        ),
        None => None,
    };
    let headers = match traces_or_general("HEADERS") {
        Some(headers) => parse_headers(&headers)?,
        None => Vec::new(),
    };
    let timeout = match traces_or_general("TIMEOUT") {
        Some(t) => Some(Duration::from_millis(t.parse().map_err(|_| {
            ConfigError(format!("OTLP timeout {t:?} is not a number of milliseconds"))
        })?)),
        None => None,
    };
    let gzip = match traces_or_general("COMPRESSION").as_deref() {
        None | Some("none") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ConfigError(format!(
                "OTLP compression {other:?}: expected gzip or none"
            )))
        }
    };
    if protocol == Protocol::Grpc {
        // gRPC endpoints have no signal path.
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
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
        return Ok(Box::new(exporter.with_gzip(gzip)));
    }
    // The signal-specific endpoint is used as is; the general one gets the signal path.
    let endpoint = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Some(e) => e,
        None => match var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(base) => format!("{}/v1/traces", base.trim_end_matches('/')),
            None => "http://localhost:4318/v1/traces".to_owned(),
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
    Ok(Box::new(exporter.with_gzip(gzip)))
}

/// `name=value,name2=value2`, values percent-encoded.
fn parse_headers(headers: &str) -> Result<Vec<(String, String)>, ConfigError> {
    headers
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("OTLP header {pair:?} is not name=value")))?;
            let value = percent_decode(value.trim())
                .ok_or_else(|| ConfigError(format!("OTLP header {name:?} has a bad percent-encoding")))?;
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
            _ => Err(ConfigError(format!(
                "OTEL_TRACES_SAMPLER_ARG={arg:?}: expected a ratio from 0 to 1"
            ))),
        }
    };
    Ok(match name.map(str::trim).unwrap_or("parentbased_always_on") {
        "always_on" => Box::new(AlwaysOnSampler),
        "always_off" => Box::new(AlwaysOffSampler),
        "traceidratio" => Box::new(ratio()?),
        "parentbased_always_on" => Box::new(ParentBasedSampler::new(AlwaysOnSampler)),
        "parentbased_always_off" => Box::new(ParentBasedSampler::new(AlwaysOffSampler)),
        "parentbased_traceidratio" => Box::new(ParentBasedSampler::new(ratio()?)),
        other => return Err(ConfigError(format!("unknown OTEL_TRACES_SAMPLER {other:?}"))),
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

    fn error(pairs: &[(&str, &str)]) -> String {
        match init_from(vars(pairs)) {
            Ok(_) => panic!("expected an error for {pairs:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn misconfiguration_is_a_clear_error() {
        assert!(error(&[("OTEL_TRACES_EXPORTER", "zipkin")]).contains("OTEL_TRACES_EXPORTER"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")]).contains("unknown OTLP protocol"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")]).contains("bad OTLP endpoint"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/v1/traces")]).contains("http or https"));
        assert!(error(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5")
        ])
        .contains("ratio"));
        assert!(error(&[("OTEL_TRACES_SAMPLER", "sometimes")]).contains("OTEL_TRACES_SAMPLER"));
        assert!(error(&[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")]).contains("whole number"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]).contains("compression"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]).contains("name=value"));
        assert!(error(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]).contains("milliseconds"));
    }

    #[test]
    fn valid_configurations_install() {
        for pairs in [
            &[("OTEL_TRACES_EXPORTER", "none")][..],
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

//! A collector on ephemeral loopback ports over a fresh data directory, and JSON helpers.
#![allow(dead_code)]

pub mod otlp;

use std::time::Duration;

use skein_collector::{Collector, CollectorConfig};

pub struct Running {
    pub collector: Collector,
    pub dir: tempfile::TempDir,
}

pub fn config(dir: &std::path::Path) -> CollectorConfig {
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    CollectorConfig {
        data_dir: dir.to_path_buf(),
        otlp_grpc: any,
        otlp_http: any,
        ui: any,
        ..CollectorConfig::default()
    }
}

pub async fn start() -> Running {
    start_with(|_| {}).await
}

pub async fn start_with(adjust: impl FnOnce(&mut CollectorConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    adjust(&mut config);
    let collector = Collector::start(config).await.unwrap();
    Running { collector, dir }
}

impl Running {
    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.collector.ui_addr())
    }

    /// GETs a query API path and returns (status, JSON).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::get(self.api(path)).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Waits for a trace to be queryable with at least `spans` spans.
    pub async fn trace(&self, trace_id: &str, spans: usize) -> serde_json::Value {
        for _ in 0..200 {
            let (status, body) = self.get(&format!("/api/v1/traces/{trace_id}")).await;
            if status == 200 && body["spans"].as_array().is_some_and(|s| s.len() >= spans) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("trace {trace_id} never had {spans} spans");
    }
}

/// The span named `name` in a trace view.
pub fn span<'a>(trace: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {trace:#}"))
}

impl Running {
    /// GETs a search until `found` accepts the answer (summaries trail the spans by a moment).
    pub async fn search_until(&self, path: &str, found: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..100 {
            let (status, body) = self.get(path).await;
            if status == 200 && found(&body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{path} never gave the expected answer; last: {last:#}");
    }
}

/// An OTLP request of `count` spans named `name`, all of trace `[trace; 16]` and starting at
/// `start` (unix nanoseconds), each lasting a millisecond.
pub fn spans_request(trace: u8, start: u64, count: u64, name: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..count)
                    .map(|i| Span {
                        trace_id: vec![trace; 16],
                        span_id: (u64::from(trace) * 1000 + i + 1).to_be_bytes().to_vec(),
                        name: name.into(),
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + 1_000_000,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// POSTs `body` to the OTLP/HTTP traces endpoint at `addr`; returns status, headers and body.
pub async fn post_to(
    addr: std::net::SocketAddr,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    post_path(addr, "/v1/traces", content_type, encoding, body).await
}

/// POSTs `body` to `path` (`/v1/traces`, `/v1/logs`) at `addr`; returns status, headers and body.
pub async fn post_path(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        request = request.header("content-encoding", e);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

impl Running {
    /// [`post_to`] this collector.
    pub async fn post(
        &self,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        post_to(self.collector.otlp_http_addr(), content_type, encoding, body).await
    }

    /// POSTs an OTLP protobuf body to `path` (`/v1/logs`); returns status, headers and body.
    pub async fn post_path_protobuf(&self, path: &str, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        post_path(
            self.collector.otlp_http_addr(),
            path,
            "application/x-protobuf",
            None,
            body,
        )
        .await
    }

    /// POSTs an OTLP protobuf body; returns the status.
    pub async fn post_protobuf(&self, body: Vec<u8>) -> u16 {
        self.post("application/x-protobuf", None, body).await.0
    }
}

/// [`spans_request`] with a 256-character attribute of pseudo-random hex on every span, so
/// that compression cannot make the data much smaller than it is (as real ids and values).
pub fn bulky_spans_request(trace: u8, start: u64, count: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use prost::Message;
    let mut request = ExportTraceServiceRequest::decode(&spans_request(trace, start, count, "bulky")[..]).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(trace);
    for span in &mut request.resource_spans[0].scope_spans[0].spans {
        let payload: String = (0..32)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{state:016x}")
            })
            .collect::<String>()[..256]
            .to_owned();
        span.attributes.push(KeyValue {
            key: "payload".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(payload)),
            }),
            ..Default::default()
        });
    }
    request.encode_to_vec()
}

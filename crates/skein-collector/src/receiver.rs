//! The OTLP receiver: `POST /v1/traces` and `/v1/logs` (protobuf or JSON by Content-Type,
//! optionally gzip) and the gRPC trace and logs services. Requests are validated and limited
//! here; a request is answered only once the store has committed it.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::incident;
use crate::secret;
use crate::store::{Store, StoreError, Write};
use crate::validate::{add_note, validate_logs, validate_traces, Validated};

/// The largest `max_body_bytes` allowed: a request of that size makes frames well within
/// what the store reads ([`crate::ingest::MAX_FRAME_BYTES`]).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// What the receiver accepts.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, compressed or not (HTTP 413 / gRPC RESOURCE_EXHAUSTED beyond).
    pub max_body_bytes: usize,
    /// Most spans (or log records) in one request.
    pub max_spans_per_request: usize,
    /// Longer string attribute values are cut to this many bytes.
    pub max_attribute_bytes: usize,
    /// Spans of one trace beyond this are rejected (a runaway loop should not fill the disk).
    pub max_spans_per_trace: u32,
    /// Longer log bodies (their strings, at any depth) are cut to this many bytes.
    pub max_log_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_spans_per_request: 100_000,
            max_attribute_bytes: 16 << 10,
            max_spans_per_trace: 100_000,
            max_log_body_bytes: 64 << 10,
        }
    }
}

/// Shared by the HTTP and gRPC receivers.
#[derive(Clone)]
pub struct Receiver {
    pub store: Arc<Store>,
    pub limits: Limits,
    /// When set, ingest requires `Authorization: Bearer <key>` (or `x-api-key: <key>`).
    pub api_key: Option<Arc<str>>,
    /// When set, accepted requests are sent on upstream too.
    pub forwarder: Option<Arc<crate::forward::Forwarder>>,
    /// Spans per trace so far.
    pub trace_spans: Arc<TraceSpanCounts>,
}

/// Spans accepted per recent trace, for the spans-per-trace limit. Bounded: when it holds
/// too many traces it starts over, so the limit is exact for the traces of the last few
/// minutes of a busy collector and generous beyond.
pub struct TraceSpanCounts {
    counts: std::sync::Mutex<std::collections::HashMap<[u8; 16], u32>>,
}

const COUNTED_TRACES: usize = 1 << 20;

/// Spans counted per trace for one request.
pub type Admitted = std::collections::HashMap<[u8; 16], u32>;

impl Default for TraceSpanCounts {
    fn default() -> Self {
        TraceSpanCounts {
            counts: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl TraceSpanCounts {
    /// Removes the spans of traces already at `limit`; returns how many were removed, and
    /// what was counted for each trace (to [`release`](Self::release) if it is not stored).
    pub fn admit(&self, request: &mut ExportTraceServiceRequest, limit: u32) -> (i64, Admitted) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() > COUNTED_TRACES {
            counts.clear();
        }
        let mut rejected = 0;
        let mut admitted = Admitted::new();
        for ss in request
            .resource_spans
            .iter_mut()
            .flat_map(|rs| rs.scope_spans.iter_mut())
        {
            ss.spans.retain(|span| {
                let Ok(id) = <[u8; 16]>::try_from(&span.trace_id[..]) else {
                    return false;
                };
                let count = counts.entry(id).or_insert(0);
                if *count >= limit {
                    rejected += 1;
                    false
                } else {
                    *count += 1;
                    *admitted.entry(id).or_insert(0) += 1;
                    true
                }
            });
        }
        (rejected, admitted)
    }

    /// Takes back what [`admit`](Self::admit) counted for a request that was not stored
    /// (refused while the store was behind): only stored spans count against the limit, so
    /// a client retrying the same request is not turned away.
    pub fn release(&self, admitted: &Admitted) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (id, n) in admitted {
            if let Some(count) = counts.get_mut(id) {
                *count = count.saturating_sub(*n);
            }
        }
    }
}

impl Receiver {
    /// Stores a validated trace request (and forwards it once stored).
    async fn accept_traces(&self, request: ExportTraceServiceRequest) -> Result<(), Refusal> {
        let copy = self.forwarder.as_ref().map(|_| Bytes::from(request.encode_to_vec()));
        let prepared = prepare(request).await?;
        self.store.write(Write::Traces(prepared)).await?;
        if let (Some(forwarder), Some(copy)) = (&self.forwarder, copy) {
            forwarder.enqueue(crate::forward::Signal::Traces, copy);
        }
        Ok(())
    }

    /// Applies the spans-per-trace limit; also returns what it counted.
    fn limit_traces(
        &self,
        mut v: Validated<ExportTraceServiceRequest>,
    ) -> (Validated<ExportTraceServiceRequest>, Admitted) {
        let (over, admitted) = self.trace_spans.admit(&mut v.request, self.limits.max_spans_per_trace);
        if over > 0 {
            v.rejected += over;
            add_note(
                &mut v.message,
                &format!(
                    "{over} spans rejected: their traces reached {} spans",
                    self.limits.max_spans_per_trace
                ),
            );
        }
        (v, admitted)
    }

    /// Stores a validated logs request (and forwards it once stored).
    async fn accept_logs(&self, request: ExportLogsServiceRequest) -> Result<(), Refusal> {
        let copy = self.forwarder.as_ref().map(|_| Bytes::from(request.encode_to_vec()));
        self.store.write(Write::Logs(request)).await?;
        if let (Some(forwarder), Some(copy)) = (&self.forwarder, copy) {
            forwarder.enqueue(crate::forward::Signal::Logs, copy);
        }
        Ok(())
    }
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Refusal {
    Unauthorized,
    TooLarge(String),
    UnsupportedMediaType(String),
    BadRequest(String),
    Busy,
    Unavailable(String),
    Internal(String),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy => Refusal::Busy,
            StoreError::Unstorable(m) => Refusal::TooLarge(m),
            StoreError::Closed | StoreError::Unavailable { .. } => Refusal::Unavailable(e.to_string()),
            other => Refusal::Internal(other.to_string()),
        }
    }
}

/// How long a client should wait when the store is behind.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The success answer, with a partial success when something was rejected or cut.
fn trace_answer(rejected: i64, message: String) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (!message.is_empty()).then_some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: message,
        }),
    }
}

fn logs_answer(rejected: i64, message: String) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (!message.is_empty()).then_some(ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: message,
        }),
    }
}

/// Frames, filters and figures are made on a blocking thread, beside the writer.
async fn prepare(request: ExportTraceServiceRequest) -> Result<crate::ingest::Prepared, Refusal> {
    tokio::task::spawn_blocking(move || crate::ingest::prepare(request))
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?
        .map_err(Refusal::from)
}

// ---- HTTP ----------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

fn format_of(headers: &HeaderMap) -> Result<Format, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        other => Err(Refusal::UnsupportedMediaType(format!(
            "unsupported content type {other:?}: send application/x-protobuf or application/json"
        ))),
    }
}

/// The body, gunzipped if it says so, never larger than `max` bytes.
fn body_of(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Bytes, Refusal> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => {
            // Read one byte past the limit to tell "exactly at" from "over" (a gzip bomb stops here).
            let mut out = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(&body[..]).take(max as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| Refusal::BadRequest(format!("the gzip body does not decompress: {e}")))?;
            if out.len() > max {
                return Err(Refusal::TooLarge(format!(
                    "the decompressed body is over the {max}-byte limit"
                )));
            }
            Ok(Bytes::from(out))
        }
        other => Err(Refusal::UnsupportedMediaType(format!(
            "unsupported content encoding {other:?}: send gzip or none"
        ))),
    }
}

/// True if no key is required, or the `Authorization: Bearer` or `x-api-key` value is the key.
fn authorized(headers: &HeaderMap, key: Option<&str>) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    secret::presented(key, value(header::AUTHORIZATION.as_str()), value("x-api-key"))
}

/// A `google.rpc.Status` body in the request's format.
fn status_response(status: StatusCode, code: i32, message: String, format: Format) -> Response {
    let mut response = match format {
        Format::Protobuf => {
            let body = tonic_types::Status {
                code,
                message,
                details: Vec::new(),
            }
            .encode_to_vec();
            (status, [(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
        }
        Format::Json => {
            let body = serde_json::json!({ "code": code, "message": message }).to_string();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
    }
    response
}

fn refusal_response(refusal: Refusal, format: Format) -> Response {
    // gRPC codes in the Status body: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE…
    match refusal {
        Refusal::Unauthorized => status_response(
            StatusCode::UNAUTHORIZED,
            16,
            "a valid API key is required".into(),
            format,
        ),
        Refusal::TooLarge(m) => status_response(StatusCode::PAYLOAD_TOO_LARGE, 8, m, format),
        Refusal::UnsupportedMediaType(m) => status_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, m, format),
        Refusal::BadRequest(m) => status_response(StatusCode::BAD_REQUEST, 3, m, format),
        Refusal::Busy => status_response(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "the store is behind; retry later".into(),
            format,
        ),
        Refusal::Unavailable(m) => status_response(StatusCode::SERVICE_UNAVAILABLE, 14, m, format),
        Refusal::Internal(m) => status_response(StatusCode::INTERNAL_SERVER_ERROR, 13, incident::report(&m), format),
    }
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(body: &[u8], format: Format) -> Result<T, Refusal> {
    match format {
        Format::Protobuf => {
            T::decode(body).map_err(|e| Refusal::BadRequest(format!("the protobuf body does not decode: {e}")))
        }
        Format::Json => {
            // serde_json stops at 128 levels, which OTLP JSON reaches with attribute values
            // nested about 30 deep, though protobuf takes them (it allows 100 nested
            // messages, about 4 JSON levels each). The depth is checked here instead, and the
            // decoder's stack grows with it.
            let depth = json_depth(body);
            if depth > MAX_JSON_DEPTH {
                return Err(Refusal::BadRequest(format!(
                    "the JSON body is nested {depth} levels deep; the limit is {MAX_JSON_DEPTH}"
                )));
            }
            let mut json = serde_json::Deserializer::from_slice(body);
            json.disable_recursion_limit();
            let value = T::deserialize(serde_stacker::Deserializer::new(&mut json))
                .and_then(|value| json.end().map(|()| value));
            value.map_err(|e| Refusal::BadRequest(format!("the JSON body is not OTLP: {e}")))
        }
    }
}

/// Deepest JSON nesting accepted: what protobuf's limit of 100 nested messages allows, with room.
const MAX_JSON_DEPTH: usize = 512;

/// How deep `[` and `{` nest in `body` (outside strings), counting no further than one past
/// the limit.
fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_JSON_DEPTH {
                    break;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn encode<T: Message + serde::Serialize>(message: &T, format: Format) -> Response {
    match format {
        Format::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            message.encode_to_vec(),
        )
            .into_response(),
        Format::Json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(message).unwrap_or_default(),
        )
            .into_response(),
    }
}

impl Receiver {
    /// Validates, limits and stores a traces request; the answer for the client.
    async fn export_traces(&self, request: ExportTraceServiceRequest) -> Result<ExportTraceServiceResponse, Refusal> {
        let (validated, admitted) = self.limit_traces(validate_traces(request, &self.limits)?);
        if let Err(refusal) = self.accept_traces(validated.request).await {
            self.trace_spans.release(&admitted);
            return Err(refusal);
        }
        Ok(trace_answer(validated.rejected, validated.message))
    }

    /// Validates and stores a logs request; the answer for the client.
    async fn export_logs(&self, request: ExportLogsServiceRequest) -> Result<ExportLogsServiceResponse, Refusal> {
        let validated = validate_logs(request, &self.limits)?;
        self.accept_logs(validated.request).await?;
        Ok(logs_answer(validated.rejected, validated.message))
    }
}

/// An OTLP/HTTP request: content type, key, body limit and decoding, then `export`; the
/// answer or the refusal in the request's format.
async fn http_export<T, R, F>(receiver: &Receiver, headers: &HeaderMap, body: Bytes, export: F) -> Response
where
    T: Message + Default + serde::de::DeserializeOwned,
    R: Message + serde::Serialize,
    F: AsyncFnOnce(T) -> Result<R, Refusal>,
{
    // Who is asking comes first: an unauthenticated client learns nothing else.
    let format = match (authorized(headers, receiver.api_key.as_deref()), format_of(headers)) {
        (true, Ok(format)) => format,
        (false, format) => return refusal_response(Refusal::Unauthorized, format.unwrap_or(Format::Json)),
        (true, Err(refusal)) => return refusal_response(refusal, Format::Json),
    };
    let result = async {
        let body = body_of(headers, body, receiver.limits.max_body_bytes)?;
        export(decode(&body, format)?).await
    }
    .await;
    match result {
        Ok(response) => encode(&response, format),
        Err(refusal) => refusal_response(refusal, format),
    }
}

async fn http_traces(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    http_export(&receiver, &headers, body, async |request| {
        receiver.export_traces(request).await
    })
    .await
}

async fn http_logs(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    http_export(&receiver, &headers, body, async |request| {
        receiver.export_logs(request).await
    })
    .await
}

/// The OTLP/HTTP routes; a request (its body included) must be received and answered within
/// `request_timeout` (a client sending a byte a minute is cut off).
pub fn http_router(receiver: Receiver, request_timeout: Duration) -> Router {
    limited(
        Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/logs", post(http_logs)),
        receiver,
        request_timeout,
    )
}

/// The dashboard's import, on the query port: a traces file someone sent (OTLP JSON or
/// protobuf, as exported) is checked, limited and stored exactly as received data is. Give
/// the receiver the query token as its key: whoever may read the dashboard may add to it.
pub fn import_router(receiver: Receiver, request_timeout: Duration) -> Router {
    limited(
        Router::new().route("/api/v1/import", post(http_traces)),
        receiver,
        request_timeout,
    )
}

/// The body limit and the request deadline over OTLP/HTTP routes.
fn limited(routes: Router<Receiver>, receiver: Receiver, request_timeout: Duration) -> Router {
    let limit = receiver.limits.max_body_bytes;
    routes
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => status_response(
                        StatusCode::REQUEST_TIMEOUT,
                        4,
                        format!("the request took longer than {request_timeout:?}"),
                        Format::Json,
                    ),
                }
            },
        ))
        .with_state(receiver)
}

// ---- gRPC ----------------------------------------------------------------------------------

fn grpc_status(refusal: Refusal) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    match refusal {
        Refusal::Unauthorized => tonic::Status::unauthenticated("a valid API key is required"),
        Refusal::TooLarge(m) => tonic::Status::resource_exhausted(m),
        Refusal::UnsupportedMediaType(m) | Refusal::BadRequest(m) => tonic::Status::invalid_argument(m),
        Refusal::Busy => tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            "the store is behind; retry later",
            ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
        ),
        Refusal::Unavailable(m) => tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            m,
            ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
        ),
        Refusal::Internal(m) => tonic::Status::internal(incident::report(&m)),
    }
}

fn grpc_authorized<T>(request: &tonic::Request<T>, key: Option<&str>) -> bool {
    let value = |name| request.metadata().get(name).and_then(|v| v.to_str().ok());
    secret::presented(key, value("authorization"), value("x-api-key"))
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if !grpc_authorized(&request, self.api_key.as_deref()) {
            return Err(grpc_status(Refusal::Unauthorized));
        }
        let answer = self.export_traces(request.into_inner()).await.map_err(grpc_status)?;
        Ok(tonic::Response::new(answer))
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        if !grpc_authorized(&request, self.api_key.as_deref()) {
            return Err(grpc_status(Refusal::Unauthorized));
        }
        let answer = self.export_logs(request.into_inner()).await.map_err(grpc_status)?;
        Ok(tonic::Response::new(answer))
    }
}

/// tonic refuses a message over the size limit with OUT_OF_RANGE, which the OTLP
/// specification lists as retryable: a compliant exporter would send the same message again
/// forever. The answer is RESOURCE_EXHAUSTED (not retryable without RetryInfo) instead.
/// Nothing else here answers OUT_OF_RANGE, and tonic sends a refused request's status in the
/// response headers (a trailers-only response), so the header is the one to change.
pub fn oversized_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    const OUT_OF_RANGE: &str = "11";
    const RESOURCE_EXHAUSTED: &str = "8";
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|v| v == OUT_OF_RANGE) {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
    }
    response
}

/// The OTLP/gRPC services (gzip accepted, messages limited like HTTP bodies).
pub fn grpc_routes(receiver: Receiver) -> tonic::service::Routes {
    use tonic::codec::CompressionEncoding;
    let limit = receiver.limits.max_body_bytes;
    let traces = TraceServiceServer::new(receiver.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(receiver)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    tonic::service::Routes::new(traces).add_service(logs)
}

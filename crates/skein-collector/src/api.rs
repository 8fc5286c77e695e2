//! The native query API (JSON under `/api/v1`), read by the dashboard.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/traces/{id}` | a whole trace: spans with resource and scope, events, links, how many spans link to each of its spans (`linked_from`), its logs |
//! | `GET /api/v1/traces/{id}/linked_from?span=&limit=&before=` | the spans linking to one of its spans (trace, span, service, name, start), newest first, `limit` (default 20, at most 1000) at a time; `next` is the `before` of the next page |
//! | `GET /api/v1/traces?…` | search: `start`, `end` (unix ns or RFC 3339), `service`, `operation`, `attr=key=value`, `attr=key!=value`, `attr=key>n`, `attr=key<n` or `attr=key` (has the attribute; repeat to AND), `exclude=key=value` (traces no span of which carries it), `min_duration`, `max_duration` (`250ms`, `1.5s`, …), `errors=true`, `limit`, `sort` (`newest`, the default; `duration`, slowest first; `spans`, most first — over every match in the range) |
//! | `GET /api/v1/traces/{id}/otlp` | the trace as OTLP JSON (`resourceSpans`), to download |
//! | `POST /api/v1/import` | OTLP traces (JSON or protobuf, e.g. a downloaded trace) stored as if received over OTLP/HTTP; the query token authorizes it |
//! | `GET /api/v1/attributes?start=&end=&service=&limit=&signal=` | attribute keys of the spans in the range (span, resource, event, link), most used first: spans carrying each, its number of values (`many`: more than a frame lists); counted over the newest 200 frames (`complete` says if that was all); `signal=logs`: of the log records (theirs and their resources'), over the newest 5000 |
//! | `GET /api/v1/attributes/values?key=&q=&start=&end=&service=&limit=` | that key's values (starting with `q`), most used first, with their spans |
//! | `GET /api/v1/services` | service names |
//! | `GET /api/v1/operations?service=` | operations (name, kind) |
//! | `GET /api/v1/stats?start=&end=&service=` | per operation: calls, errors, p50/p95/p99, calls per minute; rates over the time the data covers (`rate_start`..`rate_end`) |
//! | `GET /api/v1/dependencies?start=&end=` | calls and errors between services |
//! | `GET /api/v1/logs?trace_id=&service=&min_severity=&q=&attr=&start=&end=&limit=&before=` | log records (`trace_id`: 8 to 32 hex digits; `q`: in the body or an attribute's value; `attr` as in search), newest first, in pages of at most `limit` (1000) records and 8 MiB; `next` is the `before` of the next page |
//! | `GET /api/v1/live` | server-sent events: a trace summary whenever a trace gets new spans |
//! | `GET /api/v1/status` | stored and evicted counts, oldest kept time, disk use |
//!
//! Times are Unix nanoseconds as JSON integers (`*_unix_nano`, `duration_nano`): exact for any
//! JSON reader with 64-bit integers (Rust, Go, Python). JavaScript's `JSON.parse` reads them as
//! doubles, which round today's times to a multiple of 256 ns: enough for drawing (the
//! dashboard), not for identifying a span by its time; such clients should parse with a
//! BigInt-aware reader or use the ids.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::incident;
use crate::model;
use crate::search::{CompareOp, Comparison};
use crate::secret;
use crate::store::{LinkCursor, LogQuery, SearchOrder, SearchQuery, Store, StoreError};

/// What the query routes share.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<Store>,
    /// When set, every query needs `Authorization: Bearer <token>` or `?token=<token>`.
    pub token: Option<Arc<str>>,
    /// The forwarder, if forwarding, for its counts.
    pub forwarder: Option<Arc<crate::forward::Forwarder>>,
    /// Turns true when the collector stops: open live feeds end then, so shutting down does
    /// not wait for the browsers watching them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Where OTLP is received, for the dashboard's "send OTLP to …" hints.
    pub otlp_http: std::net::SocketAddr,
    pub otlp_grpc: std::net::SocketAddr,
}

/// An API error: a status and a message, as JSON `{"error": "..."}`.
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        } else {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, incident::report(&e.to_string()))
        }
    }
}

pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Query parameters in order, repeated keys kept.
pub fn parameters(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(crate) fn first<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// `250ms`, `1.5s`, `2m`, `300us`, `40ns`, or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "" | "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then_some((number * scale) as u64)
}

/// Unix nanoseconds, or an RFC 3339 time (`2026-11-21T18:00:00Z`, with fraction or offset).
pub fn parse_time(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, o) = time.split_at(at);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (oh, om) = o[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let mut t = clock.splitn(3, ':');
    let (hour, minute) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let seconds: f64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || !(0.0..61.0).contains(&seconds)
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era.checked_mul(146_097)?.checked_add(doe - 719_468)?;
    let secs = days
        .checked_mul(86_400)?
        .checked_add(hour * 3600 + minute * 60 - offset_secs)?;
    // Whole seconds and the fraction apart: f64 would round away the nanoseconds.
    let whole = u64::try_from(secs).ok()?.checked_mul(1_000_000_000)?;
    whole.checked_add((seconds * 1e9) as u64)
}

/// A time parameter (see [`parse_time`]), if given.
pub(crate) fn time_param(params: &[(String, String)], key: &str) -> Result<Option<u64>, ApiError> {
    first(params, key)
        .map(|v| parse_time(v).ok_or_else(|| bad(format!("{key}: {v:?} is not a time"))))
        .transpose()
}

/// A duration parameter (see [`parse_duration`]), if given.
pub(crate) fn duration_param(params: &[(String, String)], key: &str) -> Result<Option<u64>, ApiError> {
    first(params, key)
        .map(|v| parse_duration(v).ok_or_else(|| bad(format!("{key}: {v:?} is not a duration"))))
        .transpose()
}

/// A result count between 1 and `max`, if given.
pub(crate) fn limit_param(params: &[(String, String)], key: &str, max: usize) -> Result<Option<usize>, ApiError> {
    first(params, key)
        .map(|v| {
            v.parse::<usize>()
                .ok()
                .filter(|l| (1..=max).contains(l))
                .ok_or_else(|| bad(format!("{key}: {v:?} is not between 1 and {max}")))
        })
        .transpose()
}

/// A trace id, or its first 8 to 32 hex digits (as the dashboard shows them), as the range
/// of the ids starting with them.
fn trace_id_prefix(text: &str) -> Result<([u8; 16], [u8; 16]), ApiError> {
    let text = text.trim().to_ascii_lowercase();
    if !(8..=32).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!(
            "trace_id: {text:?} is not a trace id (8 to 32 hex digits)"
        )));
    }
    let padded = |digit: char| {
        let mut id = text.clone();
        while id.len() < 32 {
            id.push(digit);
        }
        id
    };
    let lowest = model::parse_hex::<16>(&padded('0')).ok_or_else(|| bad("trace_id: not hex"))?;
    let highest = model::parse_hex::<16>(&padded('f')).ok_or_else(|| bad("trace_id: not hex"))?;
    Ok((lowest, highest))
}

/// One `attr` filter: `key=value`, `key!=value`, `key>number`, `key<number`, or a bare `key`
/// (spans that have the attribute, whatever its value).
fn attribute_filter(q: &mut SearchQuery, text: &str) -> Result<(), ApiError> {
    let text = text.trim();
    let operator = text.find(['=', '!', '>', '<']);
    let Some(at) = operator else {
        q.attribute_keys.push(text.to_owned());
        return Ok(());
    };
    let key = text[..at].trim().to_owned();
    if key.is_empty() {
        return Err(bad(format!("attr: {text:?} has no attribute key before its operator")));
    }
    let rest = &text[at..];
    let (op, value) = if let Some(v) = rest.strip_prefix("!=") {
        (Some(CompareOp::NotEqual), v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Some(CompareOp::Greater), v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Some(CompareOp::Less), v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (None, v)
    } else {
        return Err(bad(format!(
            "attr: {text:?}: use key=value, key!=value, key>number, key<number or key"
        )));
    };
    let value = value.trim().to_owned();
    match op {
        None => q.attributes.push((key, value)),
        Some(op) => {
            if op != CompareOp::NotEqual && value.parse::<f64>().is_err() {
                return Err(bad(format!("attr: {text:?}: > and < compare with a number")));
            }
            q.comparisons.push(Comparison { key, op, value });
        }
    }
    Ok(())
}

fn search_query(params: &[(String, String)]) -> Result<SearchQuery, ApiError> {
    let mut q = SearchQuery::default();
    if let Some(t) = time_param(params, "start")? {
        q.start_min = t;
    }
    if let Some(t) = time_param(params, "end")? {
        q.start_max = t;
    }
    q.service = first(params, "service").map(str::to_owned);
    q.operation = first(params, "operation").map(str::to_owned);
    for (k, v) in params {
        if k == "attr" && !v.trim().is_empty() {
            attribute_filter(&mut q, v)?;
        }
        if k == "exclude" && !v.trim().is_empty() {
            match v.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    q.excluded.push((key.trim().to_owned(), value.trim().to_owned()))
                }
                _ => return Err(bad(format!("exclude: {v:?} is not key=value"))),
            }
        }
    }
    q.min_duration_nano = duration_param(params, "min_duration")?;
    q.max_duration_nano = duration_param(params, "max_duration")?;
    q.errors_only = matches!(first(params, "errors"), Some("true" | "1" | "yes"));
    if let Some(limit) = limit_param(params, "limit", 10_000)? {
        q.limit = limit;
    }
    q.order = match first(params, "sort") {
        None | Some("" | "newest") => SearchOrder::Newest,
        Some("duration") => SearchOrder::Slowest,
        Some("spans") => SearchOrder::MostSpans,
        Some(other) => {
            return Err(bad(format!(
                "sort: {other:?} is not one of newest, duration (slowest first), spans (most first)"
            )))
        }
    };
    Ok(q)
}

/// Runs a blocking store read off the async threads.
pub(crate) async fn blocking<R: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, incident::report(&e.to_string())))?
        .map_err(ApiError::from)
}

async fn trace(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = model::parse_hex::<16>(&id).ok_or_else(|| bad(format!("{id:?} is not a 32-digit hex trace id")))?;
    match blocking(&api.store, move |s| s.trace(&id)).await? {
        Some(trace) => Ok(Json(trace).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no trace {}", model::hex(&id)))),
    }
}

/// A trace as OTLP JSON (`{"resourceSpans": …}`, ids in hex), as a file to keep or send:
/// the dashboard's import reads it back.
async fn trace_otlp(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = model::parse_hex::<16>(&id).ok_or_else(|| bad(format!("{id:?} is not a 32-digit hex trace id")))?;
    match blocking(&api.store, move |s| s.trace_otlp(&id)).await? {
        Some(data) => Ok((
            [(
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"trace-{}.json\"", model::hex(&id)),
            )],
            Json(data),
        )
            .into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no trace {}", model::hex(&id)))),
    }
}

/// The spans linking to one span of a trace, newest first, a page at a time.
async fn linked_from(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = model::parse_hex::<16>(&id).ok_or_else(|| bad(format!("{id:?} is not a 32-digit hex trace id")))?;
    let params = parameters(&raw);
    let span = first(&params, "span").ok_or_else(|| bad("span: the linked span's id is required"))?;
    let span =
        model::parse_hex::<8>(span).ok_or_else(|| bad(format!("span: {span:?} is not a 16-digit hex span id")))?;
    let limit = limit_param(&params, "limit", 1_000)?.unwrap_or(20);
    let before = first(&params, "before")
        .map(|b| {
            b.parse::<LinkCursor>()
                .map_err(|()| bad(format!("before: {b:?} is not the `next` of an earlier page")))
        })
        .transpose()?;
    let page = blocking(&api.store, move |s| s.linked_from(&id, &span, limit, before.as_ref())).await?;
    Ok(Json(page).into_response())
}

async fn search(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = search_query(&parameters(&raw))?;
    let found = blocking(&api.store, move |s| s.search(&query)).await?;
    Ok(Json(json!({ "traces": found })).into_response())
}

async fn services(State(api): State<Api>) -> Result<Response, ApiError> {
    let services = blocking(&api.store, |s| s.services()).await?;
    Ok(Json(json!({ "services": services })).into_response())
}

async fn operations(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parameters(&raw);
    let service = first(&params, "service").map(str::to_owned);
    let ops = blocking(&api.store, move |s| s.operations(service.as_deref())).await?;
    let ops: Vec<_> = ops
        .into_iter()
        .map(|(service, name, kind)| json!({ "service": service, "name": name, "kind": model::kind_name(kind) }))
        .collect();
    Ok(Json(json!({ "operations": ops })).into_response())
}

fn range(params: &[(String, String)]) -> Result<(u64, u64), ApiError> {
    let now = now_nanos();
    let start = time_param(params, "start")?.unwrap_or(now.saturating_sub(3600 * 1_000_000_000));
    let end = time_param(params, "end")?.unwrap_or(now);
    Ok((start, end))
}

pub(crate) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `signal=logs` asks about log records, `signal=traces` (the default) about spans.
fn signal_is_logs(params: &[(String, String)]) -> Result<bool, ApiError> {
    match first(params, "signal") {
        None | Some("traces" | "spans") => Ok(false),
        Some("logs") => Ok(true),
        Some(other) => Err(bad(format!("signal: {other:?} is not traces or logs"))),
    }
}

/// The attributes counted for a listing: of spans, or with `signal=logs` of log records.
async fn counted_attributes(
    api: &Api,
    params: &[(String, String)],
    start: u64,
    end: u64,
    service: Option<String>,
) -> Result<(crate::search::AttributeCounts, bool), ApiError> {
    let logs = signal_is_logs(params)?;
    blocking(&api.store, move |s| {
        if logs {
            s.log_attribute_counts(start, end, service.as_deref())
        } else {
            s.attribute_counts(start, end, service.as_deref())
        }
    })
    .await
}

/// The attribute keys of the spans in a time range (of a service, if given), most used
/// first, with how many spans carry each and how many values each has.
async fn attributes(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parameters(&raw);
    let (start, end) = range(&params)?;
    let service = first(&params, "service").map(str::to_owned);
    let limit = limit_param(&params, "limit", 1_000)?.unwrap_or(200);
    let (seen, complete) = counted_attributes(&api, &params, start, end, service).await?;
    let mut values: HashMap<&str, (u64, bool)> = HashMap::new();
    for (key, value) in seen.values.keys() {
        let entry = values.entry(key.as_str()).or_default();
        match value {
            Some(_) => entry.0 += 1,
            None => entry.1 = true,
        }
    }
    let mut keys: Vec<(&String, &u64)> = seen.keys.iter().collect();
    keys.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let keys: Vec<_> = keys
        .into_iter()
        .take(limit)
        .map(|(key, count)| {
            let (distinct, many) = values.get(key.as_str()).copied().unwrap_or_default();
            json!({ "key": key, "count": count, "values": distinct, "many": many })
        })
        .collect();
    Ok(Json(json!({ "keys": keys, "spans": seen.spans, "complete": complete })).into_response())
}

/// The values of one attribute in a time range, most used first (those starting with `q`).
async fn attribute_values(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parameters(&raw);
    let (start, end) = range(&params)?;
    let key = first(&params, "key")
        .ok_or_else(|| bad("key: the attribute's key is required"))?
        .to_owned();
    let prefix = first(&params, "q").unwrap_or_default().to_owned();
    let service = first(&params, "service").map(str::to_owned);
    let limit = limit_param(&params, "limit", 200)?.unwrap_or(20);
    let (seen, complete) = counted_attributes(&api, &params, start, end, service).await?;
    let mut unlisted = 0;
    let mut found: Vec<(&str, u64)> = Vec::new();
    for ((k, value), count) in &seen.values {
        if *k != key {
            continue;
        }
        match value {
            Some(v) if v.starts_with(&prefix) => found.push((v, *count)),
            Some(_) => {}
            None => unlisted += count,
        }
    }
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let more = found.len() > limit;
    let values: Vec<_> = found
        .into_iter()
        .take(limit)
        .map(|(value, count)| json!({ "value": value, "count": count }))
        .collect();
    Ok(Json(json!({
        "key": key, "values": values, "more": more, "unlisted_spans": unlisted,
        "spans": seen.spans, "complete": complete,
    }))
    .into_response())
}

async fn stats(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parameters(&raw);
    let (start, end) = range(&params)?;
    let service = first(&params, "service").map(str::to_owned);
    let stats = blocking(&api.store, move |s| s.operation_stats(start, end, service.as_deref())).await?;
    // Rates are over the time the data covers: from the first minute with data in the range
    // (not the range's start, which may be long before anything was received) to the range's
    // end or now. A steady load reads the same whatever range is chosen.
    let first_minute = stats
        .iter()
        .filter_map(|s| s.per_minute.first())
        .map(|p| p.minute)
        .min();
    let covered_from = first_minute.map_or(start, |m| start.max(m.saturating_mul(60_000_000_000)));
    let covered_to = end.min(now_nanos()).max(covered_from);
    let minutes = ((covered_to - covered_from) as f64 / 60e9).max(1.0);
    let stats: Vec<_> = stats
        .into_iter()
        .map(|s| {
            json!({
                "service": s.service, "name": s.name, "calls": s.calls, "errors": s.errors,
                "rate_per_minute": s.calls as f64 / minutes,
                "error_rate": if s.calls == 0 { 0.0 } else { s.errors as f64 / s.calls as f64 },
                "p50_nano": s.p50_nano, "p95_nano": s.p95_nano, "p99_nano": s.p99_nano,
                "per_minute": s.per_minute,
            })
        })
        .collect();
    Ok(Json(json!({
        "start": start, "end": end, "rate_start": covered_from, "rate_end": covered_to, "operations": stats
    }))
    .into_response())
}

async fn dependencies(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let (start, end) = range(&parameters(&raw))?;
    let edges = blocking(&api.store, move |s| s.dependencies(start, end)).await?;
    Ok(Json(json!({ "start": start, "end": end, "dependencies": edges })).into_response())
}

async fn logs(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parameters(&raw);
    let mut query = LogQuery {
        limit: 200,
        ..Default::default()
    };
    if let Some(v) = first(&params, "trace_id") {
        query.trace_id = Some(trace_id_prefix(v)?);
    }
    for (k, v) in &params {
        if k == "attr" && !v.trim().is_empty() {
            let mut q = SearchQuery::default();
            attribute_filter(&mut q, v)?;
            query.attributes.extend(q.attributes);
            query.attribute_keys.extend(q.attribute_keys);
            query.comparisons.extend(q.comparisons);
        }
    }
    query.service = first(&params, "service").map(str::to_owned);
    query.text = first(&params, "q").map(str::to_owned);
    if let Some(v) = first(&params, "min_severity") {
        query.min_severity =
            Some(severity_number(v).ok_or_else(|| bad(format!("min_severity: {v:?} is not a level")))?);
    }
    query.start_min = time_param(&params, "start")?;
    query.start_max = time_param(&params, "end")?;
    if let Some(limit) = limit_param(&params, "limit", 1_000)? {
        query.limit = limit;
    }
    if let Some(v) = first(&params, "before") {
        query.before = Some(
            v.parse()
                .map_err(|()| bad(format!("before: {v:?} is not a page cursor")))?,
        );
    }
    let page = blocking(&api.store, move |s| s.logs(&query)).await?;
    Ok(Json(json!({ "logs": page.records, "next": page.next.map(|c| c.to_string()) })).into_response())
}

/// OTLP severity numbers by level name (the lowest number of each range), or a number.
fn severity_number(text: &str) -> Option<i32> {
    Some(match text.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" => 21,
        other => other.parse().ok()?,
    })
}

async fn status(State(api): State<Api>) -> Result<Response, ApiError> {
    let (oldest, disk) = blocking(&api.store, |s| Ok((s.oldest_kept()?, s.disk_bytes()?))).await?;
    let c = &api.store.counters;
    use std::sync::atomic::Ordering::Relaxed;
    let config = api.store.config();
    Ok(Json(json!({
        "spans_stored_since_start": c.spans_stored.load(Relaxed),
        "logs_stored_since_start": c.logs_stored.load(Relaxed),
        "evicted": {
            "frames": c.frames_evicted.load(Relaxed),
            "spans": c.spans_evicted.load(Relaxed),
            "traces": c.traces_evicted.load(Relaxed),
        },
        "oldest_kept_unix_nano": oldest,
        "disk_bytes": disk,
        "read_only": api.store.read_only(),
        "trace_index_memory_bytes": api.store.trace_index_memory_bytes(),
        "search_index_memory_bytes": api.store.search_index_memory_bytes(),
        "forwarding": api.forwarder.as_ref().map(|f| json!({
            "forwarded_requests": f.counters.forwarded_requests.load(Relaxed),
            "dropped_requests": f.counters.dropped_requests.load(Relaxed),
            "queued_bytes": f.counters.queued_bytes.load(Relaxed),
        })),
        "otlp_http": api.otlp_http.to_string(),
        "otlp_grpc": api.otlp_grpc.to_string(),
        "retention_seconds": config.retention.as_secs(),
        "max_disk_bytes": config.max_disk_bytes,
    }))
    .into_response())
}

async fn live(State(api): State<Api>) -> Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>> {
    use tokio_stream::StreamExt;
    let updates = tokio_stream::wrappers::BroadcastStream::new(api.store.live.subscribe());
    // A slow reader that skipped some updates (`Lagged`) keeps the newer ones.
    let events = updates.filter_map(|update| {
        let summary = update.ok()?;
        Some(Ok(Event::default()
            .event("trace")
            .json_data(&summary)
            .unwrap_or_default()))
    });
    let mut stopping = api.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let events = futures_util::StreamExt::take_until(events, stopped);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn index() -> Response {
    Json(json!({
        "skein": env!("CARGO_PKG_VERSION"),
        "api": ["/api/v1/traces", "/api/v1/traces/{id}", "/api/v1/services", "/api/v1/operations",
                "/api/v1/stats", "/api/v1/dependencies", "/api/v1/logs", "/api/v1/live", "/api/v1/status"],
    }))
    .into_response()
}

/// Checks the query token, when one is configured.
async fn require_token(
    State(token): State<Option<Arc<str>>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = token.as_deref() {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let params = parameters(&raw);
        if !secret::presented(Some(token), authorization, first(&params, "token")) {
            return ApiError(StatusCode::UNAUTHORIZED, "a valid token is required".into()).into_response();
        }
    }
    next.run(request).await
}

/// The native and Jaeger-compatible query routes, with the token check over them.
pub fn router(api: Api) -> Router {
    let token = api.token.clone();
    Router::new()
        .route("/api/v1", get(index))
        .route("/api/v1/traces", get(search))
        .route("/api/v1/traces/{id}", get(trace))
        .route("/api/v1/traces/{id}/linked_from", get(linked_from))
        .route("/api/v1/traces/{id}/otlp", get(trace_otlp))
        .route("/api/v1/services", get(services))
        .route("/api/v1/operations", get(operations))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/attributes", get(attributes))
        .route("/api/v1/attributes/values", get(attribute_values))
        .route("/api/v1/dependencies", get(dependencies))
        .route("/api/v1/logs", get(logs))
        .route("/api/v1/live", get(live))
        .route("/api/v1/status", get(status))
        .with_state(api.clone())
        .merge(crate::jaeger::router(api))
        .layer(axum::middleware::from_fn_with_state(token, require_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("300us"), Some(300_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("7"), Some(7_000_000));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_time("1700000000000000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_time("2026-11-21T18:00:00.5Z"), Some(1_795_284_000_500_000_000));
        assert_eq!(parse_time("2026-11-21T19:00:00+01:00"), Some(1_795_284_000_000_000_000));
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}

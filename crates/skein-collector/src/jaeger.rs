//! A Jaeger-compatible query API, so Grafana's Jaeger data source and the Jaeger UI can read
//! the store: the classic `/api/…` endpoints (Jaeger's JSON envelope, microseconds,
//! CHILD_OF/FOLLOWS_FROM references, typed tags with `binary` bytes, `span.kind`,
//! `otel.status_code`, `otel.scope.name` and `error` tags, 16-digit 64-bit trace ids,
//! `OTLPResourceNoServiceName`) and the `/api/v3/…` ones (OTLP JSON, snake_case and Jaeger
//! 2.x camelCase parameters, `query.attributes` as a JSON object, Jaeger's error shape).
//! Searches find spans by the tags the view shows as well as by span, resource, event and
//! link attributes, as Jaeger does. One difference: a search returns at most 1500 traces
//! (Jaeger takes any `limit`), which keeps an answer of whole traces within bounds.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{Span, TracesData};

use crate::api::{self, Api, ApiError};
use crate::model;
use crate::store::{SearchQuery, Store, StoreError};

fn envelope(data: Value) -> Response {
    let total = data.as_array().map_or(0, Vec::len);
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null })).into_response()
}

fn jaeger_error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({ "data": null, "total": 0, "limit": 0, "offset": 0,
                     "errors": [{ "code": status.as_u16(), "msg": message }] })),
    )
        .into_response()
}

/// Jaeger's service name for spans whose resource has no `service.name` (as its OTLP
/// receiver names them).
const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

/// A Jaeger id: 64-bit trace ids (the high half zero) are 16 hex digits, as Jaeger writes them.
fn jaeger_id(id: &[u8]) -> String {
    match id {
        [0, 0, 0, 0, 0, 0, 0, 0, low @ ..] if id.len() == 16 => model::hex(low),
        _ => model::hex(id),
    }
}

/// A tag with Jaeger's type: string, bool, int64, float64, or binary (base64) for bytes;
/// arrays and maps as their JSON text.
fn typed_tag(key: &str, value: Option<&AnyValue>) -> Value {
    use base64::Engine as _;
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => json!({ "key": key, "type": "string", "value": s }),
        Some(any_value::Value::BoolValue(b)) => json!({ "key": key, "type": "bool", "value": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "key": key, "type": "int64", "value": i }),
        Some(any_value::Value::DoubleValue(d)) => json!({ "key": key, "type": "float64", "value": d }),
        Some(any_value::Value::BytesValue(b)) => json!({
            "key": key,
            "type": "binary",
            "value": base64::engine::general_purpose::STANDARD.encode(b),
        }),
        _ => json!({ "key": key, "type": "string", "value": model::any_value_json(value).to_string() }),
    }
}

fn string_tag(key: &str, value: &str) -> Value {
    json!({ "key": key, "type": "string", "value": value })
}

fn typed_tags<'a>(attributes: impl IntoIterator<Item = &'a KeyValue>) -> Vec<Value> {
    attributes
        .into_iter()
        .map(|kv| typed_tag(&kv.key, kv.value.as_ref()))
        .collect()
}

/// One trace in Jaeger's shape, from its stored OTLP data (so attribute types survive).
pub fn jaeger_trace(trace_id: &[u8; 16], data: &TracesData) -> Value {
    // One process per distinct resource.
    let mut processes = serde_json::Map::new();
    let mut process_of: Vec<(Vec<u8>, String)> = Vec::new();
    let mut spans: Vec<(u64, Value)> = Vec::new();
    for rs in &data.resource_spans {
        let key = rs
            .resource
            .as_ref()
            .map(prost::Message::encode_to_vec)
            .unwrap_or_default();
        let process_id = match process_of.iter().find(|(k, _)| *k == key) {
            Some((_, id)) => id.clone(),
            None => {
                let id = format!("p{}", process_of.len() + 1);
                let attributes = rs.resource.as_ref().map(|r| &r.attributes[..]).unwrap_or_default();
                let service = attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| model::any_value_text(kv.value.as_ref()))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| NO_SERVICE_NAME.to_owned());
                let tags = typed_tags(attributes.iter().filter(|kv| kv.key != "service.name"));
                processes.insert(id.clone(), json!({ "serviceName": service, "tags": tags }));
                process_of.push((key, id.clone()));
                id
            }
        };
        for ss in &rs.scope_spans {
            for span in ss.spans.iter().filter(|s| s.trace_id == trace_id) {
                spans.push((
                    span.start_time_unix_nano,
                    jaeger_span(span, ss.scope.as_ref(), &process_id),
                ));
            }
        }
    }
    spans.sort_by_key(|(start, _)| *start);
    let spans: Vec<Value> = spans.into_iter().map(|(_, span)| span).collect();
    json!({ "traceID": jaeger_id(trace_id), "spans": spans, "processes": processes, "warnings": null })
}

fn jaeger_span(span: &Span, scope: Option<&InstrumentationScope>, process_id: &str) -> Value {
    let trace_id = jaeger_id(&span.trace_id);
    let mut references = Vec::new();
    if !span.parent_span_id.is_empty() {
        references
            .push(json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": model::hex(&span.parent_span_id) }));
    }
    for link in &span.links {
        // OpenTracing's child-of references arrive as links marked so (Jaeger's translation).
        let child_of = link
            .attributes
            .iter()
            .any(|kv| kv.key == "opentracing.ref_type" && model::any_value_text(kv.value.as_ref()) == "child_of");
        references.push(json!({
            "refType": if child_of { "CHILD_OF" } else { "FOLLOWS_FROM" },
            "traceID": jaeger_id(&link.trace_id),
            "spanID": model::hex(&link.span_id),
        }));
    }
    let mut tags = typed_tags(&span.attributes);
    let kind = model::kind_name(span.kind);
    if kind != "unspecified" {
        tags.push(string_tag("span.kind", kind));
    }
    match span.status.as_ref().map(|s| (s.code, s.message.as_str())) {
        Some((2, message)) => {
            tags.push(string_tag("otel.status_code", "ERROR"));
            tags.push(json!({ "key": "error", "type": "bool", "value": true }));
            if !message.is_empty() {
                tags.push(string_tag("otel.status_description", message));
            }
        }
        Some((1, _)) => tags.push(string_tag("otel.status_code", "OK")),
        _ => {}
    }
    if let Some(scope) = scope.filter(|s| !s.name.is_empty()) {
        tags.push(string_tag("otel.scope.name", &scope.name));
        if !scope.version.is_empty() {
            tags.push(string_tag("otel.scope.version", &scope.version));
        }
    }
    if !span.trace_state.is_empty() {
        tags.push(string_tag("w3c.tracestate", &span.trace_state));
    }
    let logs: Vec<Value> = span
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![string_tag("event", &e.name)];
            fields.extend(typed_tags(&e.attributes));
            json!({ "timestamp": e.time_unix_nano / 1000, "fields": fields })
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spanID": model::hex(&span.span_id),
        "operationName": span.name,
        "references": references,
        "startTime": span.start_time_unix_nano / 1000,
        "duration": span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / 1000,
        "tags": tags,
        "logs": logs,
        "processID": process_id,
        "warnings": null,
        "flags": span.flags & 0xff,
    })
}

async fn services(State(api): State<Api>) -> Response {
    match api::blocking(&api.store, |s| s.services()).await {
        Ok(services) => envelope(json!(services)),
        Err(e) => jaeger_error(e.0, e.1),
    }
}

async fn service_operations(State(api): State<Api>, Path(service): Path<String>) -> Response {
    match api::blocking(&api.store, move |s| s.operations(Some(&service))).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|(_, name, _)| name).collect();
            names.dedup();
            envelope(json!(names))
        }
        Err(e) => jaeger_error(e.0, e.1),
    }
}

/// `{name, spanKind}` of a service's operations (all services' without `service`), of one
/// kind if `kind_key` names it.
async fn kinded_operations(api: &Api, params: &[(String, String)], kind_key: &str) -> Result<Vec<Value>, ApiError> {
    let service = api::first(params, "service").map(str::to_owned);
    let kind = api::first(params, kind_key).map(str::to_owned);
    let ops = api::blocking(&api.store, move |s| s.operations(service.as_deref())).await?;
    Ok(ops
        .into_iter()
        .filter(|(_, _, k)| kind.as_deref().is_none_or(|want| model::kind_name(*k) == want))
        .map(|(_, name, k)| json!({ "name": name, "spanKind": model::kind_name(k) }))
        .collect())
}

async fn operations(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    match kinded_operations(&api, &api::parameters(&raw), "spanKind").await {
        Ok(ops) => envelope(Value::Array(ops)),
        Err(e) => jaeger_error(e.0, e.1),
    }
}

/// A duration as Go writes it (`1m30s`, `1.5h`, `250ms`, `10µs`): what Jaeger accepts for
/// `minDuration` and `maxDuration`. A number without a unit is an error (except `0`).
pub(crate) fn parse_go_duration(text: &str) -> Option<u64> {
    if text == "0" {
        return Some(0);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let value: f64 = number.parse().ok()?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = after;
    }
    (total.is_finite() && total < u64::MAX as f64).then_some(total as u64)
}

/// Jaeger's `tag=key:value` (the value may hold spaces and colons) and `tags={json map}`.
fn parse_tags(params: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let mut tags = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "tag" => {
                let (key, value) = v
                    .split_once(':')
                    .ok_or_else(|| format!("malformed 'tag' parameter, expecting key:value, received: {v}"))?;
                tags.push((key.to_owned(), value.to_owned()));
            }
            "tags" => {
                let map: serde_json::Map<String, Value> = serde_json::from_str(v)
                    .map_err(|e| format!("malformed 'tags' parameter, cannot unmarshal JSON: {e}"))?;
                for (key, value) in map {
                    let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                    tags.push((key, value));
                }
            }
            _ => {}
        }
    }
    Ok(tags)
}

/// Puts one searched tag into `q`: the tags the Jaeger view makes up (`error`, `span.kind`,
/// `otel.status_code`, `otel.scope.name`) become the span conditions they stand for; the rest
/// are attributes (of the span, its resource, events or links).
fn apply_tag(q: &mut SearchQuery, key: String, value: String) {
    let kind = |v: &str| match v {
        "internal" => Some(1),
        "server" => Some(2),
        "client" => Some(3),
        "producer" => Some(4),
        "consumer" => Some(5),
        _ => None,
    };
    match (key.as_str(), value.as_str()) {
        ("error", "true") | ("otel.status_code", "ERROR") => q.status_code = Some(2),
        ("otel.status_code", "OK") => q.status_code = Some(1),
        ("span.kind", k) if kind(k).is_some() => q.kind = kind(k),
        ("otel.scope.name", _) => q.scope_name = Some(value),
        _ => q.attributes.push((key, value)),
    }
}

/// Jaeger's default number of traces.
const DEFAULT_LIMIT: usize = 100;

/// The search of Jaeger's `/api/traces`, with the trace ids asked for by `traceID`.
fn jaeger_search(params: &[(String, String)]) -> Result<(SearchQuery, Vec<[u8; 16]>), ApiError> {
    let mut trace_ids = Vec::new();
    for (k, v) in params {
        if k == "traceID" {
            let id = model::parse_hex::<16>(&format!("{v:0>32}"))
                .ok_or_else(|| api::bad(format!("cannot parse traceID param: {v:?}")))?;
            trace_ids.push(id);
        }
    }
    let mut q = SearchQuery {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    let micros = |key: &str| -> Result<Option<u64>, ApiError> {
        api::first(params, key)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .and_then(|us| us.checked_mul(1000))
                    .ok_or_else(|| api::bad(format!("{key}: {v:?} is not microseconds since 1970 before 2554")))
            })
            .transpose()
    };
    if let Some(end) = micros("end")? {
        q.start_max = end;
    }
    if let Some(start) = micros("start")? {
        q.start_min = start;
    } else if let Some(lookback) = api::first(params, "lookback").and_then(api::parse_duration) {
        q.start_min = q.start_max.min(api::now_nanos()).saturating_sub(lookback);
    }
    q.service = api::first(params, "service").map(str::to_owned);
    if q.service.is_none() && trace_ids.is_empty() {
        return Err(api::bad("parameter 'service' is required"));
    }
    q.operation = api::first(params, "operation").map(str::to_owned);
    for (key, value) in parse_tags(params).map_err(api::bad)? {
        apply_tag(&mut q, key, value);
    }
    let duration = |key: &str| -> Result<Option<u64>, ApiError> {
        api::first(params, key)
            .map(|v| {
                parse_go_duration(v).ok_or_else(|| {
                    api::bad(format!(
                        "unable to parse param '{key}': {v:?} is not a duration like 1m30s"
                    ))
                })
            })
            .transpose()
    };
    q.min_duration_nano = duration("minDuration")?;
    q.max_duration_nano = duration("maxDuration")?;
    if let (Some(min), Some(max)) = (q.min_duration_nano, q.max_duration_nano) {
        if max < min {
            return Err(api::bad("'maxDuration' should be greater than 'minDuration'"));
        }
    }
    // Jaeger takes any count; the bound keeps an answer (whole traces) within reason.
    if let Some(limit) = api::limit_param(params, "limit", 1500)? {
        q.limit = limit;
    }
    Ok((q, trace_ids))
}

/// Whole traces (as stored) for a search, or exactly the asked-for trace ids.
async fn found_traces(api: &Api, query: SearchQuery, trace_ids: Vec<[u8; 16]>) -> Result<Vec<Value>, ApiError> {
    api::blocking(&api.store, move |s| {
        let ids = if trace_ids.is_empty() {
            found_ids(s, &query)?
        } else {
            trace_ids
        };
        Ok(stored_traces(s, ids)?
            .iter()
            .map(|(id, data)| jaeger_trace(id, data))
            .collect())
    })
    .await
}

/// The ids of the traces a search finds, newest first.
fn found_ids(store: &Store, query: &SearchQuery) -> Result<Vec<[u8; 16]>, StoreError> {
    Ok(store
        .search(query)?
        .iter()
        .filter_map(|summary| model::parse_hex::<16>(&summary.trace_id))
        .collect())
}

/// The stored OTLP data of each of `ids` still there.
fn stored_traces(store: &Store, ids: Vec<[u8; 16]>) -> Result<Vec<([u8; 16], TracesData)>, StoreError> {
    store.traces_otlp(&ids)
}

async fn search(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let (query, trace_ids) = match jaeger_search(&api::parameters(&raw)) {
        Ok(q) => q,
        Err(e) => return jaeger_error(e.0, e.1),
    };
    match found_traces(&api, query, trace_ids).await {
        Ok(traces) => envelope(Value::Array(traces)),
        Err(e) => jaeger_error(e.0, e.1),
    }
}

async fn trace(State(api): State<Api>, Path(id): Path<String>) -> Response {
    // Jaeger clients may drop leading zeros of a 64-bit-high-part trace id.
    let padded = format!("{id:0>32}");
    let Some(trace_id) = model::parse_hex::<16>(&padded) else {
        return jaeger_error(StatusCode::BAD_REQUEST, format!("{id:?} is not a trace id"));
    };
    match api::blocking(&api.store, move |s| s.trace_otlp(&trace_id)).await {
        Ok(Some(data)) => envelope(json!([jaeger_trace(&trace_id, &data)])),
        Ok(None) => jaeger_error(StatusCode::NOT_FOUND, "trace not found".into()),
        Err(e) => jaeger_error(e.0, e.1),
    }
}

/// Jaeger's `/api/dependencies`: `endTs` and `lookback` in milliseconds (the last 24 hours by
/// default, as Jaeger), and `service` to keep the edges touching one service.
async fn dependencies(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    const DAY_MS: u64 = 24 * 3_600_000;
    let params = api::parameters(&raw);
    let millis = |key: &str| -> Result<Option<u64>, String> {
        api::first(&params, key)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .and_then(|ms| ms.checked_mul(1_000_000))
                    .ok_or_else(|| format!("{key}: {v:?} is not milliseconds since 1970 before 2554"))
            })
            .transpose()
    };
    let (end, lookback) = match (millis("endTs"), millis("lookback")) {
        (Ok(end), Ok(lookback)) => (
            end.unwrap_or_else(api::now_nanos),
            lookback.unwrap_or(DAY_MS * 1_000_000),
        ),
        (Err(e), _) | (_, Err(e)) => return jaeger_error(StatusCode::BAD_REQUEST, e),
    };
    let service = api::first(&params, "service").map(str::to_owned);
    match api::blocking(&api.store, move |s| s.dependencies(end.saturating_sub(lookback), end)).await {
        Ok(edges) => envelope(Value::Array(
            edges
                .into_iter()
                .filter(|e| service.as_ref().is_none_or(|s| *s == e.parent || *s == e.child))
                .map(|e| json!({ "parent": e.parent, "child": e.child, "callCount": e.calls }))
                .collect(),
        )),
        Err(e) => jaeger_error(e.0, e.1),
    }
}

// ---- /api/v3 ---------------------------------------------------------------------------------

/// An API v3 error, in the shape Jaeger's HTTP gateway answers with.
fn v3_error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        Json(json!({ "error": { "httpCode": status.as_u16(), "message": message } })),
    )
        .into_response()
}

async fn v3_services(State(api): State<Api>) -> Response {
    match api::blocking(&api.store, |s| s.services()).await {
        Ok(services) => Json(json!({ "services": services })).into_response(),
        Err(e) => v3_error(e.0, e.1),
    }
}

async fn v3_operations(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let mut params = api::parameters(&raw);
    // Jaeger 2.x clients send `spanKind`, older ones `span_kind`.
    for (k, _) in &mut params {
        if k == "spanKind" {
            *k = "span_kind".into();
        }
    }
    match kinded_operations(&api, &params, "span_kind").await {
        Ok(ops) => Json(json!({ "operations": ops })).into_response(),
        Err(e) => v3_error(e.0, e.1),
    }
}

/// The first of several spellings of a v3 parameter (`query.service_name` and Jaeger 2.x's
/// `query.serviceName`).
fn v3_param<'a>(params: &'a [(String, String)], names: &[&'a str]) -> Option<(&'a str, &'a str)> {
    names
        .iter()
        .find_map(|name| api::first(params, name).map(|v| (v, *name)))
        .map(|(v, name)| (name, v))
}

fn v3_search(params: &[(String, String)]) -> Result<SearchQuery, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let mut q = SearchQuery::default();
    let time = |names: &[&str]| -> Result<Option<u64>, (StatusCode, String)> {
        v3_param(params, names)
            .map(|(name, v)| {
                api::parse_time(v).ok_or_else(|| bad(format!("malformed parameter {name}: {v:?} is not a time")))
            })
            .transpose()
    };
    if let Some(t) = time(&["query.start_time_min", "query.startTimeMin"])? {
        q.start_min = t;
    }
    if let Some(t) = time(&["query.start_time_max", "query.startTimeMax"])? {
        q.start_max = t;
    }
    q.service = v3_param(params, &["query.service_name", "query.serviceName"]).map(|(_, v)| v.to_owned());
    q.operation = v3_param(params, &["query.operation_name", "query.operationName"]).map(|(_, v)| v.to_owned());
    let duration = |names: &[&str]| -> Result<Option<u64>, (StatusCode, String)> {
        v3_param(params, names)
            .map(|(name, v)| {
                parse_go_duration(v).ok_or_else(|| bad(format!("malformed parameter {name}: {v:?} is not a duration")))
            })
            .transpose()
    };
    q.min_duration_nano = duration(&["query.duration_min", "query.durationMin"])?;
    q.max_duration_nano = duration(&["query.duration_max", "query.durationMax"])?;
    for (k, v) in params {
        if k == "query.attributes" {
            // Grafana's v3 client: a JSON object of attribute values.
            let map: serde_json::Map<String, Value> = serde_json::from_str(v)
                .map_err(|e| bad(format!("malformed parameter query.attributes: not a JSON object: {e}")))?;
            for (key, value) in map {
                let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                apply_tag(&mut q, key, value);
            }
        } else if let Some(key) = k.strip_prefix("query.attributes.") {
            apply_tag(&mut q, key.to_owned(), v.clone());
        }
    }
    if let Some((name, v)) = v3_param(
        params,
        &[
            "query.search_depth",
            "query.searchDepth",
            "query.num_traces",
            "query.numTraces",
        ],
    ) {
        q.limit = v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1500).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "malformed parameter {name}: {v:?} is not a number from 1 to 1500"
                ))
            })?;
    }
    Ok(q)
}

async fn v3_traces(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query = match v3_search(&api::parameters(&raw)) {
        Ok(q) => q,
        Err((status, message)) => return v3_error(status, message),
    };
    let found = api::blocking(&api.store, move |s| {
        let mut all = TracesData::default();
        for (_, data) in stored_traces(s, found_ids(s, &query)?)? {
            all.resource_spans.extend(data.resource_spans);
        }
        Ok(all)
    })
    .await;
    match found {
        Ok(data) if data.resource_spans.is_empty() => v3_error(StatusCode::NOT_FOUND, "No traces found"),
        Ok(data) => Json(json!({ "result": data })).into_response(),
        Err(e) => v3_error(e.0, e.1),
    }
}

async fn v3_trace(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let Some(trace_id) = model::parse_hex::<16>(&format!("{id:0>32}")) else {
        return v3_error(StatusCode::BAD_REQUEST, format!("malformed parameter trace_id: {id:?}"));
    };
    match api::blocking(&api.store, move |s| s.trace_otlp(&trace_id)).await {
        Ok(Some(data)) => Json(json!({ "result": data })).into_response(),
        Ok(None) => v3_error(StatusCode::NOT_FOUND, "trace not found"),
        Err(e) => v3_error(e.0, e.1),
    }
}

/// The Jaeger routes (`/api/…` and `/api/v3/…`).
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(service_operations))
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .route("/api/v3/services", get(v3_services))
        .route("/api/v3/operations", get(v3_operations))
        .route("/api/v3/traces", get(v3_traces))
        .route("/api/v3/traces/{id}", get(v3_trace))
        .with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn jaeger_tags_parse_as_jaeger() {
        assert_eq!(
            parse_tags(&pairs(&[("tags", r#"{"http.status_code":"500","retry":true}"#)])).unwrap(),
            pairs(&[("http.status_code", "500"), ("retry", "true")])
        );
        // `tag=key:value`: the value keeps its spaces and later colons.
        assert_eq!(
            parse_tags(&pairs(&[("tag", "note:two words: and more")])).unwrap(),
            pairs(&[("note", "two words: and more")])
        );
        assert!(parse_tags(&pairs(&[("tag", "nonsense")])).is_err());
        assert!(parse_tags(&pairs(&[("tags", "{not json")])).is_err());
    }

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_go_duration("10µs"), Some(10_000));
        assert_eq!(parse_go_duration("3us2ns"), Some(3_002));
        assert_eq!(parse_go_duration("0"), Some(0));
        for bad in ["100", "", "1x", "ms", "1.5.5s", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sixty_four_bit_trace_ids_are_sixteen_digits() {
        let mut id = [0u8; 16];
        id[15] = 0xab;
        assert_eq!(jaeger_id(&id), "00000000000000ab");
        id[0] = 1;
        assert_eq!(jaeger_id(&id).len(), 32);
    }
}

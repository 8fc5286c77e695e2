//! A Jaeger-compatible query API, so Grafana's Jaeger data source and the Jaeger UI can read
//! the store: the classic `/api/…` endpoints (Jaeger's JSON envelope, microseconds,
//! CHILD_OF/FOLLOWS_FROM references, `span.kind`, `otel.status_code` and `error` tags) and the
//! `/api/v3/…` ones (OTLP JSON).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::api::{self, Api, ApiError};
use crate::model::{self, SpanView, TraceView};
use crate::store::SearchQuery;

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

fn tag(key: &str, value: &Value) -> Value {
    match value {
        Value::String(s) => json!({ "key": key, "type": "string", "value": s }),
        Value::Bool(b) => json!({ "key": key, "type": "bool", "value": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "key": key, "type": "int64", "value": n }),
        Value::Number(n) => json!({ "key": key, "type": "float64", "value": n }),
        other => json!({ "key": key, "type": "string", "value": other.to_string() }),
    }
}

fn tags(attributes: &serde_json::Map<String, Value>) -> Vec<Value> {
    attributes.iter().map(|(k, v)| tag(k, v)).collect()
}

/// One trace in Jaeger's shape.
pub fn jaeger_trace(trace: &TraceView) -> Value {
    // One process per distinct (service, resource).
    let mut processes: BTreeMap<String, Value> = BTreeMap::new();
    let mut process_ids: Vec<(String, String)> = Vec::new();
    let mut spans = Vec::new();
    for span in &trace.spans {
        let resource_key = serde_json::to_string(&span.resource).unwrap_or_default();
        let process_id = match process_ids.iter().find(|(k, _)| *k == resource_key) {
            Some((_, id)) => id.clone(),
            None => {
                let id = format!("p{}", process_ids.len() + 1);
                let mut resource = span.resource.clone();
                resource.remove("service.name");
                processes.insert(
                    id.clone(),
                    json!({ "serviceName": span.service, "tags": tags(&resource) }),
                );
                process_ids.push((resource_key, id.clone()));
                id
            }
        };
        spans.push(jaeger_span(span, &process_id));
    }
    json!({ "traceID": trace.trace_id, "spans": spans, "processes": processes, "warnings": null })
}

fn jaeger_span(span: &SpanView, process_id: &str) -> Value {
    let mut references = Vec::new();
    if !span.parent_span_id.is_empty() {
        references.push(json!({ "refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id }));
    }
    for link in &span.links {
        references.push(json!({ "refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id }));
    }
    let mut span_tags = tags(&span.attributes);
    if span.kind != "unspecified" && span.kind != "internal" {
        span_tags.push(tag("span.kind", &json!(span.kind)));
    }
    match span.status.code {
        "error" => {
            span_tags.push(tag("otel.status_code", &json!("ERROR")));
            span_tags.push(tag("error", &json!(true)));
            if !span.status.message.is_empty() {
                span_tags.push(tag("otel.status_description", &json!(span.status.message)));
            }
        }
        "ok" => span_tags.push(tag("otel.status_code", &json!("OK"))),
        _ => {}
    }
    if !span.scope.name.is_empty() {
        span_tags.push(tag("otel.scope.name", &json!(span.scope.name)));
        if !span.scope.version.is_empty() {
            span_tags.push(tag("otel.scope.version", &json!(span.scope.version)));
        }
    }
    if !span.trace_state.is_empty() {
        span_tags.push(tag("w3c.tracestate", &json!(span.trace_state)));
    }
    let logs: Vec<Value> = span
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![tag("event", &json!(e.name))];
            fields.extend(tags(&e.attributes));
            json!({ "timestamp": e.time_unix_nano / 1000, "fields": fields })
        })
        .collect();
    json!({
        "traceID": span.trace_id,
        "spanID": span.span_id,
        "operationName": span.name,
        "references": references,
        "startTime": span.start_unix_nano / 1000,
        "duration": span.duration_nano / 1000,
        "tags": span_tags,
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

/// Jaeger's `tags` parameter: a JSON object, or `key=value` / `key:value` pairs separated by
/// spaces.
fn parse_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let map: serde_json::Map<String, Value> =
            serde_json::from_str(text).map_err(|e| format!("tags: not a JSON object: {e}"))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect());
    }
    text.split_whitespace()
        .map(|pair| {
            pair.split_once(['=', ':'])
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .ok_or_else(|| format!("tags: {pair:?} is not key=value"))
        })
        .collect()
}

fn jaeger_search(params: &[(String, String)]) -> Result<SearchQuery, ApiError> {
    let mut q = SearchQuery::default();
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
    q.operation = api::first(params, "operation").map(str::to_owned);
    for (k, v) in params {
        if k == "tags" || k == "tag" {
            q.attributes.extend(parse_tags(v).map_err(api::bad)?);
        }
    }
    q.min_duration_nano = api::duration_param(params, "minDuration")?;
    q.max_duration_nano = api::duration_param(params, "maxDuration")?;
    if let Some(limit) = api::limit_param(params, "limit", 1500)? {
        q.limit = limit;
    }
    Ok(q)
}

/// Whole traces for the summaries a search found.
async fn full_traces(api: &Api, query: SearchQuery) -> Result<Vec<TraceView>, ApiError> {
    api::blocking(&api.store, move |s| {
        let mut traces = Vec::new();
        for summary in s.search(&query)? {
            if let Some(id) = model::parse_hex::<16>(&summary.trace_id) {
                if let Some(trace) = s.trace(&id)? {
                    traces.push(trace);
                }
            }
        }
        Ok(traces)
    })
    .await
}

async fn search(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query = match jaeger_search(&api::parameters(&raw)) {
        Ok(q) => q,
        Err(e) => return jaeger_error(e.0, e.1),
    };
    match full_traces(&api, query).await {
        Ok(traces) => envelope(Value::Array(traces.iter().map(jaeger_trace).collect())),
        Err(e) => jaeger_error(e.0, e.1),
    }
}

async fn trace(State(api): State<Api>, Path(id): Path<String>) -> Response {
    // Jaeger clients may drop leading zeros of a 64-bit-high-part trace id.
    let padded = format!("{id:0>32}");
    let Some(trace_id) = model::parse_hex::<16>(&padded) else {
        return jaeger_error(StatusCode::BAD_REQUEST, format!("{id:?} is not a trace id"));
    };
    match api::blocking(&api.store, move |s| s.trace(&trace_id)).await {
        Ok(Some(trace)) => envelope(json!([jaeger_trace(&trace)])),
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

async fn v3_services(State(api): State<Api>) -> Result<Response, ApiError> {
    let services = api::blocking(&api.store, |s| s.services()).await?;
    Ok(Json(json!({ "services": services })).into_response())
}

async fn v3_operations(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let ops = kinded_operations(&api, &api::parameters(&raw), "span_kind").await?;
    Ok(Json(json!({ "operations": ops })).into_response())
}

fn v3_search(params: &[(String, String)]) -> Result<SearchQuery, ApiError> {
    let mut q = SearchQuery::default();
    if let Some(t) = api::time_param(params, "query.start_time_min")? {
        q.start_min = t;
    }
    if let Some(t) = api::time_param(params, "query.start_time_max")? {
        q.start_max = t;
    }
    q.service = api::first(params, "query.service_name").map(str::to_owned);
    q.operation = api::first(params, "query.operation_name").map(str::to_owned);
    q.min_duration_nano = api::duration_param(params, "query.duration_min")?;
    q.max_duration_nano = api::duration_param(params, "query.duration_max")?;
    for (k, v) in params {
        if let Some(key) = k.strip_prefix("query.attributes.") {
            q.attributes.push((key.to_owned(), v.clone()));
        }
    }
    let depth_key = if api::first(params, "query.search_depth").is_some() {
        "query.search_depth"
    } else {
        "query.num_traces"
    };
    if let Some(limit) = api::limit_param(params, depth_key, 1500)? {
        q.limit = limit;
    }
    Ok(q)
}

async fn v3_traces(State(api): State<Api>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let query = v3_search(&api::parameters(&raw))?;
    let data = api::blocking(&api.store, move |s| {
        let mut all = opentelemetry_proto::tonic::trace::v1::TracesData::default();
        for summary in s.search(&query)? {
            if let Some(id) = model::parse_hex::<16>(&summary.trace_id) {
                if let Some(data) = s.trace_otlp(&id)? {
                    all.resource_spans.extend(data.resource_spans);
                }
            }
        }
        Ok(all)
    })
    .await?;
    Ok(Json(json!({ "result": data })).into_response())
}

async fn v3_trace(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let trace_id = model::parse_hex::<16>(&id).ok_or_else(|| api::bad(format!("{id:?} is not a trace id")))?;
    match api::blocking(&api.store, move |s| s.trace_otlp(&trace_id)).await? {
        Some(data) => Ok(Json(json!({ "result": data })).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, "trace not found".into())),
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

    #[test]
    fn jaeger_tags_parse_from_json_and_logfmt() {
        assert_eq!(
            parse_tags(r#"{"http.status_code":"500","retry":true}"#).unwrap(),
            [
                ("http.status_code".to_owned(), "500".to_owned()),
                ("retry".to_owned(), "true".to_owned())
            ]
        );
        assert_eq!(
            parse_tags("a=1 b:\"two\"").unwrap(),
            [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "two".to_owned())]
        );
        assert!(parse_tags("nonsense").is_err());
        assert!(parse_tags("{not json").is_err());
    }
}

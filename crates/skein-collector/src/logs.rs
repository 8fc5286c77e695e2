//! OTLP log records: stored one row each with their trace and span ids, so a trace's logs
//! are one index lookup away.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, LogsData, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use rusqlite::params;

use crate::model::{self, LogView, ScopeView};
use crate::store::StoreError;

/// Inserts every record of a request; returns how many.
pub(crate) fn insert(tx: &rusqlite::Transaction<'_>, request: &ExportLogsServiceRequest) -> Result<u64, StoreError> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO logs(time, trace_id, span_id, service, severity, body, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut count = 0;
    for rl in &request.resource_logs {
        let service = model::service_name(rl.resource.as_ref());
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                let text = model::any_value_text(record.body.as_ref());
                // A string body is kept once, in the searchable column; the stored record
                // goes without it (see `restore_body`).
                let mut record = record.clone();
                if matches!(&record.body, Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }) if !s.is_empty())
                {
                    record.body = None;
                }
                // Each row holds its record with resource and scope, so it reads back whole.
                let one = LogsData {
                    resource_logs: vec![ResourceLogs {
                        resource: rl.resource.clone(),
                        scope_logs: vec![ScopeLogs {
                            scope: sl.scope.clone(),
                            log_records: vec![record.clone()],
                            schema_url: sl.schema_url.clone(),
                        }],
                        schema_url: rl.schema_url.clone(),
                    }],
                };
                let time = if record.time_unix_nano != 0 {
                    record.time_unix_nano
                } else {
                    record.observed_time_unix_nano
                };
                let trace_id = (record.trace_id.len() == 16).then_some(&record.trace_id);
                let span_id = (record.span_id.len() == 8).then_some(&record.span_id);
                statement.execute(params![
                    time as i64,
                    trace_id,
                    span_id,
                    service,
                    record.severity_number,
                    text,
                    one.encode_to_vec(),
                ])?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// Puts back a string body that `insert` kept only in the `body` column.
pub(crate) fn restore_body(record: &mut LogRecord, column: &str) {
    if record.body.is_none() && !column.is_empty() {
        record.body = Some(AnyValue {
            value: Some(any_value::Value::StringValue(column.to_owned())),
        });
    }
}

/// A record for the API.
pub(crate) fn log_view(
    record: &LogRecord,
    resource: Option<&Resource>,
    scope: Option<&InstrumentationScope>,
) -> LogView {
    LogView {
        time_unix_nano: record.time_unix_nano,
        observed_time_unix_nano: record.observed_time_unix_nano,
        service: model::service_name(resource),
        severity_number: record.severity_number,
        severity_text: record.severity_text.clone(),
        body: model::any_value_json(record.body.as_ref()),
        attributes: model::attributes_json(&record.attributes),
        trace_id: model::hex(&record.trace_id),
        span_id: model::hex(&record.span_id),
        resource: resource
            .map(|r| model::attributes_json(&r.attributes))
            .unwrap_or_default(),
        scope: scope
            .map(|s| ScopeView {
                name: s.name.clone(),
                version: s.version.clone(),
                attributes: model::attributes_json(&s.attributes),
            })
            .unwrap_or_default(),
    }
}

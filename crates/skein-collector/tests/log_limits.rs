//! Log records obey the size limits: bodies and resource attributes are cut (and the cut is
//! reported as a partial success), a string body is stored once, and the logs API answers in
//! bounded pages.

mod common;

use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

fn string(value: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value)),
    })
}

fn logs(service: &str, resource_value: String, bodies: impl Iterator<Item = (u64, String)>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    KeyValue {
                        key: "service.name".into(),
                        value: string(service.into()),
                        ..Default::default()
                    },
                    KeyValue {
                        key: "big".into(),
                        value: string(resource_value),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .map(|(time, body)| LogRecord {
                        time_unix_nano: time,
                        severity_number: 9,
                        body: string(body),
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

/// Issue: a 15 MiB log body was stored whole (twice) and log resource attributes were not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_resource_attributes_are_cut_and_bodies_stored_once() {
    let running = common::start().await;
    let body = "é".repeat(4 << 20); // 8 MiB of two-byte characters
    let request = logs(
        "big-logs",
        "r".repeat(100_000),
        std::iter::once((1_700_000_000_000_000_000, body)),
    );
    let (status, _, answer) = running.post_path_protobuf("/v1/logs", request).await;
    assert_eq!(status, 200);
    let answer = ExportLogsServiceResponse::decode(&answer[..]).unwrap();
    let message = answer.partial_success.expect("the cuts are reported").error_message;
    assert!(message.contains("1 log bodies cut to 65536 bytes"), "{message}");
    assert!(message.contains("1 attribute values cut to 16384 bytes"), "{message}");

    let (status, page) = running.get("/api/v1/logs?service=big-logs").await;
    assert_eq!(status, 200);
    let record = &page["logs"][0];
    assert_eq!(record["body"].as_str().unwrap().len(), 65536);
    assert_eq!(record["resource"]["big"].as_str().unwrap().len(), 16384);

    // The body is kept once: in its searchable column, not again inside the stored record.
    let db = rusqlite::Connection::open(running.dir.path().join("skein.db")).unwrap();
    let (record_bytes, body_bytes): (i64, i64) = db
        .query_row("SELECT length(record), length(body) FROM logs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(body_bytes >= 65536 / 2, "{body_bytes}");
    assert!(
        record_bytes < 20_000,
        "the record without its body: {record_bytes} bytes"
    );
    running.collector.shutdown().await;
}

/// Issue: `GET /api/v1/logs` built its whole answer in memory (a 472 MB answer took ~2 GB).
/// Pages are bounded by count and by bytes, and `next` leads through all of them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_api_answers_in_bounded_pages() {
    let running = common::start().await;
    let base = 1_700_000_000_000_000_000u64;
    // 160 records of 64 KiB: 10 MiB, more than one page's 8 MiB.
    for batch in 0..4u64 {
        let bodies = (0..40u64).map(move |i| {
            let n = batch * 40 + i;
            (base + n * 1_000, format!("{n:04} {}", "x".repeat(65_000)))
        });
        let (status, _, _) = running
            .post_path_protobuf("/v1/logs", logs("paged", String::new(), bodies))
            .await;
        assert_eq!(status, 200);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/logs?service=paged&limit=1000".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = running.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let records = page["logs"].as_array().unwrap();
        let bytes: usize = records.iter().map(|r| r["body"].as_str().unwrap().len()).sum();
        assert!(bytes <= 8 << 20, "a page holds at most 8 MiB of records: {bytes}");
        seen.extend(records.iter().map(|r| r["body"].as_str().unwrap()[..4].to_owned()));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/logs?service=paged&limit=1000&before={next}"),
            None => break,
        }
    }
    assert!(pages >= 2, "{pages} pages");
    let expected: Vec<String> = (0..160).rev().map(|n| format!("{n:04}")).collect();
    assert_eq!(seen, expected, "every record once, newest first");
    // A count limit pages too.
    let (_, page) = running.get("/api/v1/logs?service=paged&limit=7").await;
    assert_eq!(page["logs"].as_array().unwrap().len(), 7);
    assert!(page["next"].is_string());
    assert_eq!(running.get("/api/v1/logs?before=nonsense").await.0, 400);
    running.collector.shutdown().await;
}

//! `TracedPool`'s connections and transactions record the same query activities as the pool,
//! plus `BEGIN`, `COMMIT` and `ROLLBACK`, all under the activity that ran them.
#![cfg(feature = "sqlx")]

use skein::{ActivityKind, ActivitySource, FutureExt};
use skein_export::{ExportPipeline, InMemoryExporter};

static APP: ActivitySource = ActivitySource::new("sqlx_tx.app");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_transactions_record_their_queries_and_statements() {
    let exporter = InMemoryExporter::default();
    let _export = ExportPipeline::new()
        .with_sources(["sqlx_tx.app", "sqlx"])
        .simple(exporter.clone())
        .install();
    // One connection, so the in-memory database is the same for every query.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let db = skein_tracing::TracedPool::new(pool);

    let request = APP.start_activity("POST /transfer", ActivityKind::Server).unwrap();
    async {
        let mut tx = db.begin().await.unwrap();
        sqlx::query("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO accounts(balance) VALUES (100)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut conn = db.acquire().await.unwrap();
        let mut inner = conn.begin().await.unwrap();
        sqlx::query("UPDATE accounts SET balance = balance - 10")
            .execute(&mut *inner)
            .await
            .unwrap();
        inner.rollback().await.unwrap();
        let (balance,): (i64,) = sqlx::query_as("SELECT balance FROM accounts WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(balance, 100, "rolled back");
        let failed = sqlx::query("SELECT * FROM nowhere").fetch_all(&mut *conn).await;
        assert!(failed.is_err());
    }
    .with_current()
    .await;
    let request_span = request.span_id();
    drop(request);

    let finished = exporter.finished();
    let queries: Vec<_> = finished.iter().filter(|a| a.source().name() == "sqlx").collect();
    let names: Vec<String> = queries.iter().map(|a| a.display_name()).collect();
    assert_eq!(
        names,
        [
            "BEGIN",
            "CREATE",
            "INSERT accounts",
            "COMMIT",
            "BEGIN",
            "UPDATE accounts",
            "ROLLBACK",
            "SELECT accounts",
            "SELECT nowhere"
        ]
    );
    for query in &queries {
        assert_eq!(query.parent_span_id(), request_span, "{}", query.display_name());
        assert_eq!(query.kind(), ActivityKind::Client);
        assert_eq!(query.tag("db.system.name").unwrap().to_string(), "sqlite");
    }
    assert_eq!(queries[3].tag("db.operation.name").unwrap().to_string(), "COMMIT");
    assert_eq!(queries[7].tag("db.response.returned_rows").unwrap().to_string(), "1");
    assert!(queries[8].tag("error.type").is_some());
}

//! A small order service instrumented with `tracing` and Skein together: log lines carry the
//! trace and span ids, and the console exporter prints the trace tree, database queries
//! included.
//!
//! ```sh
//! cargo run -p skein-tracing --example with_logs
//! ```

use skein::{ActivityKind, ActivitySource, FutureExt};
use skein_export::{ConsoleExporter, ConsoleFormat, ExportPipeline};
use skein_tracing::{TracedPool, WithTraceIds};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

static SHOP: ActivitySource = ActivitySource::new("shop");

#[tracing::instrument(skip(db))]
async fn place_order(db: &TracedPool<sqlx::Sqlite>, customer: &str, items: i64) -> Result<i64, sqlx::Error> {
    tracing::info!(items, "order received");
    let (id,): (i64,) = sqlx::query_as("INSERT INTO orders(customer, items) VALUES (?, ?) RETURNING id")
        .bind(customer)
        .bind(items)
        .fetch_one(db)
        .await?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE customer = ?")
        .bind(customer)
        .fetch_one(db)
        .await?;
    tracing::info!(order.id = id, orders.of_customer = count, "order stored");
    Ok(id)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _export = ExportPipeline::new()
        .with_sources(["shop", "with_logs", "sqlx"])
        .simple(ConsoleExporter::new(ConsoleFormat::Tree))
        .install();
    tracing_subscriber::registry()
        // sqlx also logs each query at DEBUG; the activities say it better.
        .with(Targets::new().with_default(tracing::Level::INFO))
        .with(skein_tracing::layer())
        .with(tracing_subscriber::fmt::layer().event_format(WithTraceIds::new(tracing_subscriber::fmt::format())))
        .init();

    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    sqlx::query("CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, items INTEGER)")
        .execute(&pool)
        .await?;
    let db = TracedPool::new(pool);

    let request = SHOP.start_activity("POST /orders", ActivityKind::Server);
    let id = place_order(&db, "ada", 3).with_current().await?;
    tracing::info!(order.id = id, "responding 201");
    drop(request);
    // The console exporter prints a trace once its root has been quiet a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    Ok(())
}

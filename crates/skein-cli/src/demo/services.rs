//! The demo's services, one per process (`skein demo-service <name>`), each set up the way a
//! user's service is: `skein_export::init()` from `OTEL_*` variables, the axum `TraceLayer`,
//! reqwest through `SkeinMiddleware`, hyper with `SkeinConnector` for HTTPS, sqlx through
//! `TracedPool`, and `tracing` log lines sent as OTLP logs carrying trace and span ids.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};
use serde_json::json;
use skein::{Activity, ActivityIdFormat, ActivityKind, ActivitySource, ActivityStartOptions, FutureExt};
use skein_http::{ClientTraceLayer, ClientTraceService, SkeinConnector, SkeinMiddleware, TraceLayer};
use skein_tracing::TracedPool;
use tower_layer::Layer;
use tower_service::Service;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;

/// What one service process is told by `skein demo`.
#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    /// storefront, orders, catalog, payments or loadgen.
    pub service: String,
    #[arg(long)]
    pub catalog: Option<String>,
    #[arg(long)]
    pub orders: Option<String>,
    #[arg(long)]
    pub payments: Option<String>,
    #[arg(long)]
    pub storefront: Option<String>,
    /// The demo's certificate (PEM): served by payments, trusted by storefront.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM), for payments.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where orders keeps its SQLite database.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Requests per second, for loadgen.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn required<'a>(value: &'a Option<String>, what: &str) -> Result<&'a str, Failure> {
    value.as_deref().ok_or_else(|| format!("--{what} is required").into())
}

/// Runs one service until SIGINT, SIGTERM or the parent closing stdin, then flushes.
pub async fn run(args: ServiceArgs) -> Result<(), Failure> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Spans and log records, both as `OTEL_*` says (the demo sets OTLP/HTTP to the collector).
    let export = skein_export::init().map_err(|e| format!("export setup: {e}"))?;
    // The services' own `tracing` lines become OTLP log records on their traces (the
    // libraries' spans and events are left out of the demo).
    let ours = tracing_subscriber::filter::filter_fn(|meta| meta.target().starts_with("skein::demo"));
    tracing_subscriber::registry()
        .with(skein_tracing::layer().with_filter(ours))
        .init();
    let result = match args.service.as_str() {
        "catalog" => serve(catalog(), None).await,
        "payments" => {
            let tls = server_tls(args.cert.as_ref(), args.key.as_ref())?;
            serve(payments(), Some(tls)).await
        }
        "orders" => serve(orders(args.data.as_ref()).await?, None).await,
        "storefront" => serve(storefront(&args)?, None).await,
        "loadgen" => loadgen(&args).await,
        other => Err(format!("no demo service {other:?}").into()),
    };
    // Let in-flight responses finish their activities, then flush.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = tokio::task::spawn_blocking(move || export.shutdown(Duration::from_secs(5))).await;
    result
}

/// Resolves when the process is asked to stop: a signal, or `skein demo` going away (stdin closes).
async fn stopped() {
    let parent_gone = async {
        use tokio::io::AsyncReadExt;
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while matches!(stdin.read(&mut buffer).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = crate::wait_for_signal() => {}
        _ = parent_gone => {}
    }
}

/// Serves on an ephemeral loopback port, announcing it on stdout as `ready <port>`.
async fn serve(app: Router, tls: Option<Arc<rustls::ServerConfig>>) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?.port());
    match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(stopped()).await?,
        Some(tls) => {
            tokio::select! {
                _ = skein_http::serve_tls(listener, tls, app) => {}
                _ = stopped() => {}
            }
        }
    }
    Ok(())
}

fn announce(port: u16) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {port}");
    let _ = out.flush();
}

/// Server activities continuing the caller's trace, with the customer's baggage copied onto
/// them and everything under them as tags, so the dashboard can search by tier in every service.
fn instrumented(router: Router) -> Router {
    router.layer(TraceLayer::new().with_baggage_tags(skein::BaggageTags::keys(["customer.tier", "customer.id"])))
}

async fn pause(min_ms: u64, max_ms: u64) {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(min_ms..=max_ms))).await;
}

// ---------- catalog ----------

const PRODUCTS: [(&str, f64); 6] = [
    ("kettle", 39.0),
    ("teapot", 24.5),
    ("mug", 9.0),
    ("grinder", 79.0),
    ("filter", 4.5),
    ("scale", 29.0),
];

fn catalog() -> Router {
    instrumented(
        Router::new()
            .route(
                "/items",
                get(|| async {
                    pause(8, 25).await;
                    tracing::info!(count = PRODUCTS.len(), "catalog listed");
                    Json(
                        PRODUCTS
                            .iter()
                            .map(|(sku, price)| json!({ "sku": sku, "price": price }))
                            .collect::<Vec<_>>(),
                    )
                }),
            )
            .route(
                "/items/{sku}",
                get(|Path(sku): Path<String>| async move {
                    pause(3, 10).await;
                    match PRODUCTS.iter().find(|(s, _)| *s == sku) {
                        Some((sku, price)) => Json(json!({ "sku": sku, "price": price })).into_response(),
                        None => (StatusCode::NOT_FOUND, format!("no product {sku}")).into_response(),
                    }
                }),
            ),
    )
}

// ---------- payments ----------

#[derive(Deserialize, Serialize)]
struct Charge {
    order_id: i64,
    amount: f64,
}

fn payments() -> Router {
    instrumented(Router::new().route(
        "/charge",
        post(|Json(charge): Json<Charge>| async move {
            pause(20, 60).await;
            let activity = Activity::current();
            if fastrand::f64() < 0.12 {
                if let Some(a) = &activity {
                    a.set_tag("payment.outcome", "processor_unavailable");
                }
                tracing::error!(order_id = charge.order_id, "charge failed: card processor unavailable");
                return (StatusCode::SERVICE_UNAVAILABLE, "card processor unavailable").into_response();
            }
            if let Some(a) = &activity {
                a.set_tag("payment.outcome", "accepted");
                a.set_tag("payment.amount", charge.amount);
            }
            tracing::info!(order_id = charge.order_id, amount = charge.amount, "charge accepted");
            Json(json!({ "status": "accepted" })).into_response()
        }),
    ))
}

fn server_tls(cert: Option<&PathBuf>, key: Option<&PathBuf>) -> Result<Arc<rustls::ServerConfig>, Failure> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_file(cert.ok_or("--cert is required")?)?;
    let key = PrivateKeyDer::from_pem_file(key.ok_or("--key is required")?)?;
    Ok(Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?,
    ))
}

// ---------- orders ----------

static RULES: ActivitySource = ActivitySource::new("demo.orders.rules");

#[derive(Deserialize, Serialize)]
struct Order {
    customer: String,
    items: Vec<String>,
    total: f64,
}

async fn orders(data: Option<&PathBuf>) -> Result<Router, Failure> {
    let path = data.ok_or("--data is required")?.join("orders.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, customer TEXT, tier TEXT, total REAL, discount REAL)",
    )
    .execute(&pool)
    .await?;
    let db = Arc::new(TracedPool::new(pool));
    Ok(instrumented(
        Router::new().route("/orders", post(place_order)).with_state(db),
    ))
}

/// The business rule of seed 004: usually a cache hit, sometimes a scan of every promotion —
/// the span that shows where the 400 ms went.
async fn evaluate_discount(order: &Order, tier: &str) -> f64 {
    let rule = Activity::current();
    let slow = fastrand::f64() < 0.1;
    if let Some(a) = &rule {
        a.set_tag("rule.name", "loyalty-discount");
        a.set_tag("customer.tier", tier.to_owned());
        a.set_tag("order.items", order.items.len() as i64);
        a.set_tag("order.total", order.total);
        a.set_tag("rule.cache", if slow { "miss" } else { "hit" });
        a.set_tag("rule.candidates_scanned", if slow { 48_000i64 } else { 12 });
    }
    let started = Instant::now();
    if slow {
        pause(300, 400).await;
        tracing::warn!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "discount rule cache miss: scanned every promotion"
        );
    } else {
        pause(1, 4).await;
    }
    match tier {
        "gold" => 0.15,
        "silver" => 0.05,
        _ => 0.0,
    }
}

async fn place_order(
    State(db): State<Arc<TracedPool<sqlx::Sqlite>>>,
    Json(order): Json<Order>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let tier = Activity::current()
        .and_then(|a| a.baggage_item("customer.tier"))
        .unwrap_or_else(|| "unknown".into());
    let discount = evaluate_discount(&order, &tier)
        .in_activity(RULES.start_activity("evaluate discount rule", ActivityKind::Internal))
        .await;
    let fail = |e: sqlx::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let (id,): (i64,) =
        sqlx::query_as("INSERT INTO orders(customer, tier, total, discount) VALUES (?, ?, ?, ?) RETURNING id")
            .bind(&order.customer)
            .bind(&tier)
            .bind(order.total)
            .bind(discount)
            .fetch_one(&*db)
            .await
            .map_err(fail)?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE customer = ?")
        .bind(&order.customer)
        .fetch_one(&*db)
        .await
        .map_err(fail)?;
    tracing::info!(order_id = id, customer = %order.customer, orders_so_far = count, "order stored");
    Ok(Json(
        json!({ "order_id": id, "discount": discount, "total": order.total * (1.0 - discount) }),
    ))
}

// ---------- storefront ----------

type HttpsClient = ClientTraceService<Client<SkeinConnector, Full<Bytes>>>;

#[derive(Clone)]
struct Storefront {
    http: ClientWithMiddleware,
    payments: HttpsClient,
    catalog_url: Arc<str>,
    orders_url: Arc<str>,
    payments_url: Arc<str>,
}

#[derive(Deserialize)]
struct CheckoutQuery {
    customer: String,
}

fn storefront(args: &ServiceArgs) -> Result<Router, Failure> {
    use rustls::pki_types::pem::PemObject;
    let cert = rustls::pki_types::CertificateDer::from_pem_file(args.cert.as_ref().ok_or("--cert is required")?)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Idle connections close soon, so new ones (and their connection-setup traces) keep coming.
    let payments = ClientTraceLayer.layer(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(2))
            .build(SkeinConnector::with_tls_config(Arc::new(tls))),
    );
    let state = Storefront {
        http: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(SkeinMiddleware)
            .build(),
        payments,
        catalog_url: required(&args.catalog, "catalog")?.into(),
        orders_url: required(&args.orders, "orders")?.into(),
        payments_url: required(&args.payments, "payments")?.into(),
    };
    Ok(instrumented(
        Router::new().route("/checkout", get(checkout)).with_state(state),
    ))
}

impl Storefront {
    async fn price(&self, sku: &str) -> Result<f64, Failure> {
        let item: serde_json::Value = self
            .http
            .get(format!("{}/items/{sku}", self.catalog_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(item["price"].as_f64().unwrap_or(0.0))
    }

    async fn charge(&self, charge: &Charge) -> Result<(), Failure> {
        let request = http::Request::post(format!("{}/charge", self.payments_url))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(charge)?)))?;
        let response = self.payments.clone().call(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(format!("payments answered {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        Ok(())
    }
}

async fn checkout(State(shop): State<Storefront>, Query(query): Query<CheckoutQuery>) -> Response {
    let first = PRODUCTS[fastrand::usize(..PRODUCTS.len())].0;
    let second = PRODUCTS[fastrand::usize(..PRODUCTS.len())].0;
    let (a, b) = tokio::join!(shop.price(first), shop.price(second));
    let total = match (a, b) {
        (Ok(a), Ok(b)) => a + b,
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "catalog lookup failed");
            return (StatusCode::BAD_GATEWAY, format!("catalog: {e}")).into_response();
        }
    };
    let order = Order {
        customer: query.customer.clone(),
        items: vec![first.to_owned(), second.to_owned()],
        total,
    };
    let placed = shop
        .http
        .post(format!("{}/orders", shop.orders_url))
        .json(&order)
        .send()
        .await
        .map_err(Failure::from)
        .and_then(|r| r.error_for_status().map_err(Failure::from));
    let placed: serde_json::Value = match placed {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "placing the order failed");
            return (StatusCode::BAD_GATEWAY, format!("orders: {e}")).into_response();
        }
    };
    let charge = Charge {
        order_id: placed["order_id"].as_i64().unwrap_or(0),
        amount: placed["total"].as_f64().unwrap_or(total),
    };
    if let Err(e) = shop.charge(&charge).await {
        tracing::error!(order_id = charge.order_id, error = %e, "payment failed");
        return (StatusCode::BAD_GATEWAY, format!("payment failed: {e}")).into_response();
    }
    tracing::info!(order_id = charge.order_id, customer = %query.customer, "checkout completed");
    Json(json!({ "order_id": charge.order_id, "charged": charge.amount })).into_response()
}

// ---------- load generator ----------

static LOADGEN: ActivitySource = ActivitySource::new("demo.loadgen");

const CUSTOMERS: [(&str, &str); 5] = [
    ("c-17", "gold"),
    ("c-23", "silver"),
    ("c-42", "bronze"),
    ("c-51", "gold"),
    ("c-88", "bronze"),
];

async fn loadgen(args: &ServiceArgs) -> Result<(), Failure> {
    let storefront: Arc<str> = required(&args.storefront, "storefront")?.into();
    let catalog: Arc<str> = required(&args.catalog, "catalog")?.into();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SkeinMiddleware)
        .build();
    let rate = args.rate.clamp(0.1, 1000.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    announce(0);
    let stop = stopped();
    tokio::pin!(stop);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        while tasks.try_join_next().is_some() {}
        let (client, storefront, catalog) = (client.clone(), storefront.clone(), catalog.clone());
        if n % 5 == 4 {
            tasks.spawn(legacy_browse(client, catalog));
        } else {
            tasks.spawn(customer_checkout(client, storefront));
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// A customer's checkout: the root of the trace, with the customer in baggage for every hop.
async fn customer_checkout(client: ClientWithMiddleware, storefront: Arc<str>) {
    let (customer, tier) = CUSTOMERS[fastrand::usize(..CUSTOMERS.len())];
    let activity = LOADGEN.start_activity("customer checkout", ActivityKind::Internal);
    if let Some(a) = &activity {
        a.add_baggage("customer.tier", tier)
            .add_baggage("customer.id", customer);
        a.set_tag("customer.tier", tier).set_tag("customer.id", customer);
    }
    async {
        match client
            .get(format!("{storefront}/checkout?customer={customer}"))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => tracing::info!(customer, "checkout succeeded"),
            Ok(r) => tracing::warn!(customer, status = r.status().as_u16(), "checkout failed"),
            Err(e) => tracing::error!(customer, error = %e, "checkout request failed"),
        }
    }
    .in_activity(activity)
    .await;
}

/// An old client that still speaks the hierarchical `Request-Id` format, straight to catalog.
async fn legacy_browse(client: ClientWithMiddleware, catalog: Arc<str>) {
    let options = ActivityStartOptions {
        id_format: ActivityIdFormat::Hierarchical,
        ..Default::default()
    };
    let activity = LOADGEN.start_activity_with("legacy catalog browse", ActivityKind::Internal, options);
    async {
        if let Err(e) = client.get(format!("{catalog}/items")).send().await {
            tracing::error!(error = %e, "legacy browse failed");
        }
    }
    .in_activity(activity)
    .await;
}

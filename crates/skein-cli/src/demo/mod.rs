//! `skein demo`: the collector and dashboard plus a small distributed system on loopback —
//! `storefront` calling `catalog`, `orders` (a business rule and SQLite) and `payments`
//! (HTTPS) — and a load generator, each service its own process exporting over OTLP exactly as
//! a user's service would.

pub mod services;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use skein_collector::{Collector, CollectorConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `skein demo` options.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Stop after this long (`30s`, `5m`); runs until Ctrl-C without it.
    #[arg(long, value_parser = crate::parse_age)]
    pub duration: Option<Duration>,
    /// Requests per second from the load generator.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// The dashboard's port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 18888)]
    pub port: u16,
}

/// One service process.
struct Service {
    name: &'static str,
    child: Child,
}

/// Starts `skein demo-service <name>` and waits for its `ready <port>` line.
async fn spawn_service(name: &'static str, args: &[String], otlp_http: SocketAddr) -> Result<(Service, u16), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the skein binary: {e}"))?;
    let endpoint = format!("http://{otlp_http}");
    let mut command = Command::new(exe);
    command
        .arg("demo-service")
        .arg(name)
        .args(args)
        .env("OTEL_SERVICE_NAME", name)
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_LOGS_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=demo,service.version=1.0.0",
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "500")
        .env("OTEL_BLRP_SCHEDULE_DELAY", "500")
        .env_remove("OTEL_TRACES_SAMPLER")
        .env_remove("OTEL_TRACES_SAMPLER_ARG")
        .env_remove("OTEL_SDK_DISABLED")
        .stdin(Stdio::piped()) // closed when the demo ends, however it ends
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    let port = match ready {
        Ok(Ok(Some(line))) => line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .ok_or_else(|| format!("{name} said {line:?} instead of ready"))?,
        Ok(Ok(None)) | Ok(Err(_)) => return Err(format!("{name} exited before it was ready")),
        Err(_) => return Err(format!("{name} was not ready within 30 s")),
    };
    Ok((Service { name, child }, port))
}

/// Asks a service to stop (SIGTERM), waits for it to flush, then kills it if it must.
async fn stop(mut service: Service) {
    if let Some(pid) = service.child.id() {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    drop(service.child.stdin.take());
    if tokio::time::timeout(Duration::from_secs(8), service.child.wait())
        .await
        .is_err()
    {
        eprintln!("skein demo: {} did not stop in time; killing it", service.name);
        let _ = service.child.kill().await;
    }
}

fn write_certificate(dir: &Path) -> Result<(String, String), String> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|e| format!("cannot make the demo certificate: {e}"))?;
    let cert_path = dir.join("demo-cert.pem");
    let key_path = dir.join("demo-key.pem");
    std::fs::write(&cert_path, key.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&key_path, key.signing_key.serialize_pem()).map_err(|e| e.to_string())?;
    Ok((cert_path.display().to_string(), key_path.display().to_string()))
}

async fn start_system(dir: &Path, otlp_http: SocketAddr, rate: f64) -> Result<Vec<Service>, String> {
    let (cert, key) = write_certificate(dir)?;
    let mut running = Vec::new();
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let (catalog, catalog_port) = spawn_service("catalog", &[], otlp_http).await?;
    running.push(catalog);
    let (payments, payments_port) = spawn_service(
        "payments",
        &["--cert".into(), cert.clone(), "--key".into(), key],
        otlp_http,
    )
    .await?;
    running.push(payments);
    let data = dir.display().to_string();
    let (orders, orders_port) = spawn_service("orders", &["--data".into(), data], otlp_http).await?;
    running.push(orders);
    let storefront_args = [
        "--catalog".into(),
        url(catalog_port),
        "--orders".into(),
        url(orders_port),
        "--payments".into(),
        // By name, so the connection setup shows a DNS lookup before connect and TLS.
        format!("https://localhost:{payments_port}"),
        "--cert".into(),
        cert,
    ];
    let (storefront, storefront_port) = spawn_service("storefront", &storefront_args, otlp_http).await?;
    running.push(storefront);
    let loadgen_args = [
        "--storefront".into(),
        url(storefront_port),
        "--catalog".into(),
        url(catalog_port),
        "--rate".into(),
        rate.to_string(),
    ];
    let (loadgen, _) = spawn_service("loadgen", &loadgen_args, otlp_http).await?;
    running.push(loadgen);
    Ok(running)
}

/// Runs the demo until Ctrl-C (or `--duration`), then stops everything cleanly.
pub async fn run(args: DemoArgs) -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("skein-demo-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skein demo: cannot make a working directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let config = CollectorConfig {
        data_dir: dir.path().join("data"),
        // The demo's own OTLP ports, so it runs beside a `skein dashboard` on the defaults.
        otlp_grpc: loopback(0),
        otlp_http: loopback(0),
        ui: loopback(args.port),
        retention: Duration::from_secs(24 * 3600),
        ..CollectorConfig::default()
    };
    let collector = match Collector::start(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skein demo: {e}");
            if args.port != 0 {
                eprintln!("skein demo: pass --port to use another dashboard port");
            }
            return ExitCode::FAILURE;
        }
    };
    let services = match start_system(dir.path(), collector.otlp_http_addr(), args.rate).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skein demo: {e}");
            collector.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    println!("Skein demo: dashboard at http://{}", collector.ui_addr());
    println!(
        "  loadgen → storefront → catalog, orders (SQLite), payments (HTTPS) at {} checkouts/s; OTLP on http://{}",
        args.rate,
        collector.otlp_http_addr()
    );
    println!(
        "  Look at: Traces with min duration 300ms — the slow checkouts wait on `evaluate discount rule` in orders \
         (the critical path shows it); Errors only shows payments' 503s. Ctrl-C to stop."
    );
    let ended = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = crate::wait_for_signal() => {}
        _ = ended => {}
    }
    eprintln!("skein demo: stopping");
    // The load generator first, so no request is cut off half-way; then the rest.
    for service in services.into_iter().rev() {
        stop(service).await;
    }
    collector.shutdown().await;
    ExitCode::SUCCESS
}

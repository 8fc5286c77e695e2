//! The `skein` command. `skein dashboard` runs Skein's collector: OTLP in (gRPC and HTTP),
//! a durable store under `--data`, and the query API and web UI on `--ui`. `skein demo` runs
//! the same with a small distributed system feeding it.

mod demo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use skein_collector::receiver::Limits;
use skein_collector::serve::ConnectionLimits;
use skein_collector::{Collector, CollectorConfig};

#[derive(Parser)]
#[command(
    name = "skein",
    version,
    about = "Distributed tracing for Rust: collector, store and dashboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP traces and logs, store them, and serve the query API and dashboard.
    Dashboard(DashboardArgs),
    /// The dashboard with a demo system (storefront, orders, catalog, payments, load) feeding it.
    Demo(demo::DemoArgs),
    /// One service of the demo (started by `skein demo`).
    #[command(hide = true)]
    DemoService(demo::services::ServiceArgs),
}

#[derive(clap::Args)]
struct DashboardArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = ".skein")]
    data: PathBuf,
    /// OTLP/gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:4317")]
    otlp_grpc: SocketAddr,
    /// OTLP/HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:4318")]
    otlp_http: SocketAddr,
    /// Dashboard and query API listen address.
    #[arg(long, default_value = "127.0.0.1:18888")]
    ui: SocketAddr,
    /// Delete traces older than this (`7d`, `12h`, `30m`).
    #[arg(long, default_value = "7d", value_parser = parse_age)]
    retention: Duration,
    /// Keep the store under this size (`10GiB`, `500MB`).
    #[arg(long, default_value = "10GiB", value_parser = parse_size)]
    max_disk: u64,
    /// Largest OTLP request body, before and after decompression.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_body: u64,
    /// Most spans or log records in one OTLP request.
    #[arg(long, default_value_t = 100_000)]
    max_spans_per_request: usize,
    /// Longer attribute values are cut to this many bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    max_attribute_length: usize,
    /// Spans of one trace beyond this many are rejected.
    #[arg(long, default_value_t = 100_000)]
    max_spans_per_trace: u32,
    /// Longer log bodies are cut to this size.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_log_body: u64,
    /// Require this key on OTLP ingest (`Authorization: Bearer <key>` or `x-api-key`).
    #[arg(long, env = "SKEIN_API_KEY")]
    api_key: Option<String>,
    /// Require this token on the query API and dashboard.
    #[arg(long, env = "SKEIN_QUERY_TOKEN")]
    query_token: Option<String>,
    /// Allow listening on non-loopback addresses without --api-key / --query-token.
    #[arg(long)]
    allow_public: bool,
    /// Also send everything received to this OTLP/HTTP endpoint (e.g. http://tempo:4318).
    #[arg(long, value_name = "URL")]
    forward: Option<String>,
    /// Most data waiting for the --forward upstream while it is down; the oldest goes first.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    forward_buffer: u64,
    /// Most open connections per listener; beyond, new ones are closed at once.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// A connection must send a request's head within this (idle ones are closed after it).
    #[arg(long, default_value = "10s", value_parser = parse_age)]
    header_timeout: Duration,
    /// Also answer the dashboard for this host name (a reverse proxy's public name; repeat
    /// for several). IP addresses, `localhost` and `*.localhost` are always answered; any
    /// other name is refused, so a web page cannot reach the dashboard by DNS rebinding.
    #[arg(long = "ui-host", value_name = "NAME")]
    ui_hosts: Vec<String>,
}

/// `7d`, `12h`, `30m`, `45s`.
pub(crate) fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, like 7d"))?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("{text:?}: the unit must be d, h, m or s")),
    };
    Ok(Duration::from_secs(n * seconds))
}

/// `10GiB`, `500MB`, `64KiB`, `1048576`.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, like 10GiB"))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            ))
        }
    };
    n.checked_mul(scale).ok_or_else(|| format!("{text:?} is too large"))
}

async fn dashboard(args: DashboardArgs) -> ExitCode {
    let config = CollectorConfig {
        data_dir: args.data,
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        ui: args.ui,
        retention: args.retention,
        max_disk_bytes: args.max_disk,
        limits: Limits {
            max_body_bytes: usize::try_from(args.max_body).unwrap_or(usize::MAX),
            max_spans_per_request: args.max_spans_per_request,
            max_attribute_bytes: args.max_attribute_length,
            max_spans_per_trace: args.max_spans_per_trace,
            max_log_body_bytes: usize::try_from(args.max_log_body).unwrap_or(usize::MAX),
        },
        api_key: args.api_key,
        query_token: args.query_token,
        allow_unauthenticated_public: args.allow_public,
        forward: args.forward,
        forward_buffer_bytes: args.forward_buffer,
        connections: ConnectionLimits {
            max_connections: args.max_connections,
            header_read_timeout: args.header_timeout,
            ..ConnectionLimits::default()
        },
        ui_hosts: args.ui_hosts,
        ..CollectorConfig::default()
    };
    let progress = |line: &str| eprintln!("skein: {line}");
    let collector = match Collector::start_with_progress(config, &progress).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skein: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Skein dashboard: http://{}", collector.ui_addr());
    println!(
        "OTLP: gRPC {} · HTTP http://{}/v1/traces (Ctrl-C to stop)",
        collector.otlp_grpc_addr(),
        collector.otlp_http_addr()
    );
    wait_for_signal().await;
    eprintln!("skein: stopping (finishing acknowledged writes)");
    collector.shutdown().await;
    ExitCode::SUCCESS
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every connection is a file descriptor: the soft limit (often 1024) goes up to the hard
    // one, so that the connection caps, not the process, decide how many clients are served.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skein: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Dashboard(args) => runtime.block_on(dashboard(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::DemoService(args) => {
            let name = args.service.clone();
            match runtime.block_on(demo::services::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("skein demo: {name}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_parse_with_clear_errors() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1_800)));
        assert!(parse_age("7 days").unwrap_err().contains("unit"));
        assert!(parse_age("d").unwrap_err().contains("number"));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("99999999999TiB").unwrap_err().contains("too large"));
    }
}

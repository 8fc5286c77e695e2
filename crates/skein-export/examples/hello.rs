//! A tiny traced program configured only through `OTEL_*` variables.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=console cargo run -p skein-export --example hello
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p skein-export --example hello
//! ```

use std::time::Duration;

use skein::{ActivityEvent, ActivityKind, ActivitySource, ActivityStatusCode, Tag};

static SOURCE: ActivitySource = ActivitySource::new("hello").with_version("1.0.0");

fn main() {
    let guard = match skein_export::init() {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("hello: {e}");
            std::process::exit(2);
        }
    };

    {
        let request = SOURCE.start_activity("GET /hello", ActivityKind::Server);
        if let Some(r) = &request {
            r.add_tags([Tag::new("http.request.method", "GET"), Tag::new("url.path", "/hello")]);
        }
        {
            let lookup = SOURCE.start_activity("SELECT greeting", ActivityKind::Client);
            if let Some(l) = &lookup {
                l.set_tag("db.system.name", "sqlite");
            }
            std::thread::sleep(Duration::from_millis(12));
        }
        {
            let render = SOURCE.start_activity("render", ActivityKind::Internal);
            std::thread::sleep(Duration::from_millis(3));
            if let Some(r) = &render {
                r.add_event(ActivityEvent::new("template cache miss"));
                r.set_status(ActivityStatusCode::Error, Some("template missing, used the default"));
            }
        }
        if let Some(r) = &request {
            r.set_tag("http.response.status_code", 200);
        }
    }

    if let Err(e) = guard.shutdown(Duration::from_secs(10)) {
        eprintln!("hello: export did not finish: {e}");
        std::process::exit(1);
    }
}

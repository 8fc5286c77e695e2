//! `skein dashboard` as a real child process on ephemeral loopback ports, for the tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `skein dashboard`; killed when dropped.
pub struct Dashboard {
    pub child: Child,
    /// `http://127.0.0.1:p`.
    pub ui: String,
    /// `127.0.0.1:p`.
    pub otlp_grpc: String,
    /// `127.0.0.1:p`.
    pub otlp_http: String,
}

impl Dashboard {
    /// Starts it on `data` and reads the addresses it prints.
    pub fn start(data: &std::path::Path) -> Dashboard {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skein"))
            .args(["dashboard", "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
            .args(["--ui", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ui = lines.next().unwrap().unwrap();
        let otlp = lines.next().unwrap().unwrap();
        // "OTLP: gRPC 127.0.0.1:p · HTTP http://127.0.0.1:q/v1/traces (Ctrl-C to stop)"
        let otlp_grpc = otlp
            .split("gRPC ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let otlp_http = otlp
            .split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        Dashboard {
            child,
            ui: ui.strip_prefix("Skein dashboard: ").unwrap().to_owned(),
            otlp_grpc,
            otlp_http,
        }
    }

    /// The OTLP/HTTP traces URL.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.otlp_http)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

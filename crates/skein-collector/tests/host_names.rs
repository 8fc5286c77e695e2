//! The query/UI port answers only its own host names (no DNS rebinding), and every answer
//! carries the browser security headers.

mod common;

/// GETs `path` on the UI port with `Host: host`; status and headers.
async fn get_as(running: &common::Running, host: &str, path: &str) -> (u16, reqwest::header::HeaderMap) {
    let response = reqwest::Client::new()
        .get(running.api(path))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.headers().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebinding_host_name_is_refused_everywhere_on_the_ui_port() {
    let running = common::start_with(|c| c.ui_hosts = vec!["traces.example.com".into()]).await;
    let port = running.collector.ui_addr().port();
    for path in [
        "/api/v1/traces",
        "/api/v1/status",
        "/api/services",
        "/traces",
        "/ui/app.js",
    ] {
        let (status, _) = get_as(&running, &format!("attacker.example:{port}"), path).await;
        assert_eq!(status, 421, "{path}");
        let (status, _) = get_as(&running, "localhost.attacker.example", path).await;
        assert_eq!(status, 421, "{path}");
    }
    // Import (a write) is refused the same way.
    let refused = reqwest::Client::new()
        .post(running.api("/api/v1/import"))
        .header("host", "attacker.example")
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 421);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost:4444".to_owned(),
        format!("[::1]:{port}"),
        "traces.example.com".to_owned(),
        "Traces.Example.Com:443".to_owned(),
    ] {
        let (status, _) = get_as(&running, &host, "/api/v1/status").await;
        assert_eq!(status, 200, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_browser_security_headers() {
    let running = common::start().await;
    for path in [
        "/traces",
        "/ui/app.js",
        "/api/v1/status",
        "/api/v1/nothing-here",
        "/api/services",
    ] {
        let response = reqwest::get(running.api(path)).await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    // The page itself has no inline script left for the policy to block.
    let page = reqwest::get(running.api("/traces"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let inline = page
        .match_indices("<script")
        .filter(|(at, _)| !page[*at..].split('>').next().unwrap_or("").contains("src="))
        .count();
    assert_eq!(inline, 0, "inline scripts in {page}");
}

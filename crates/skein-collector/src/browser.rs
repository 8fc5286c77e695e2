//! What the query/UI port demands of browsers: the `Host` names it answers (so a page on
//! another site cannot read the store through DNS rebinding), and the headers every answer
//! carries (a Content-Security-Policy with scripts from this origin only, no framing, no
//! MIME sniffing, no referrer sent elsewhere).
//!
//! DNS rebinding works by pointing a name the attacker owns at 127.0.0.1: the victim's
//! browser then sends the attacker's page's requests to the collector with `Host:
//! attacker.example`. Such a name is never one of ours, so it is refused. Accepted: IP
//! literals (a rebinding needs a DNS name), `localhost` and names under `.localhost` (which
//! browsers resolve to loopback themselves), and the names configured for a reverse proxy
//! (`--ui-host`), each with any port (an SSH tunnel or proxy may change it).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The policy for every answer: the page's scripts, styles, fetches and images come from
/// this origin (images and fetches also from the `data:` and `blob:` URLs the page makes
/// itself); nothing may frame it, no plug-ins, no `<base>`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The host names the UI port answers besides IP literals and loopback names.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// Also accepts these names (a reverse proxy's public name, without a port).
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        AllowedHosts {
            names: names
                .into_iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// True if a request naming `host` (a `Host` header value or URI authority) is for us.
    pub fn accepts(&self, host: &str) -> bool {
        let name = host_name(host).trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.names.contains(&name)
    }
}

/// The name part of `host[:port]` or `[v6]:port` (brackets removed).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or("", |(inside, _)| inside);
    }
    match host.rsplit_once(':') {
        // One colon: a port. More than one without brackets is not a host.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => "",
        None => host,
    }
}

/// Refuses requests for other host names (421), and adds the security headers to every answer.
pub(crate) async fn guard(
    axum::extract::State(allowed): axum::extract::State<std::sync::Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let named = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let mut response = match named {
        // No name at all is not a browser (every browser sends one).
        Some(host) if !allowed.accepts(&host) => {
            let message = format!(
                "this server does not answer for host {:?}: open it by its address, localhost, or a name given with --ui-host",
                cut(&host, 200)
            );
            (
                StatusCode::MISDIRECTED_REQUEST,
                Json(serde_json::json!({ "error": message })),
            )
                .into_response()
        }
        _ => next.run(request).await,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_ip_literals_and_configured_names_are_ours() {
        let allowed = AllowedHosts::new(["Traces.Example.com".to_owned()]);
        for host in [
            "127.0.0.1:18888",
            "localhost",
            "localhost:9999",
            "LOCALHOST.:18888",
            "app.localhost:18888",
            "[::1]:18888",
            "10.1.2.3",
            "traces.example.com",
            "traces.example.com:443",
        ] {
            assert!(allowed.accepts(host), "{host}");
        }
        for host in [
            "attacker.example:18888",
            "attacker.example",
            "localhost.attacker.example",
            "example.com",
            "",
            ":18888",
            "[::1",
            "a:b:c",
            "traces.example.com.evil",
        ] {
            assert!(!allowed.accepts(host), "{host}");
        }
    }
}

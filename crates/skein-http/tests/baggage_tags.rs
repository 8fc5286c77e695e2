//! `TraceLayer::with_baggage_tags`: chosen baggage entries become tags of the server activity
//! and of every activity started under it, other entries do not; sampling is unchanged.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::{serve, stopped, tag, text};
use skein::{ActivityKind, ActivitySource, BaggageTags};
use skein_http::TraceLayer;

static WORK: ActivitySource = ActivitySource::new("skein.http.test.baggage_work");
static UNLISTENED: ActivitySource = ActivitySource::new("baggage_tags.nobody_listens");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_baggage_entries_tag_the_server_activity_and_its_children() {
    let app = Router::new()
        .route(
            "/tier",
            get(|| async {
                let child = WORK.start_activity("price basket", ActivityKind::Internal).unwrap();
                let grandchild = WORK.start_activity("look up discount", ActivityKind::Internal).unwrap();
                // Nobody listens to this source: the tagging listener does not make it exist.
                assert!(UNLISTENED.start_activity("unwanted", ActivityKind::Internal).is_none());
                drop(grandchild);
                drop(child);
                "ok"
            }),
        )
        .layer(TraceLayer::new().with_baggage_tags(BaggageTags::keys(["customer.tier", "customer.id"])));
    let addr = serve(app).await;
    let body = text(
        reqwest::Client::new()
            .get(format!("http://{addr}/tier"))
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .header("baggage", "customer.tier=gold,customer.id=c-42,session.token=s3cr3t")
            .send(),
    )
    .await;
    assert_eq!(body, "ok");

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let ours = loop {
        let ours: Vec<_> = stopped()
            .into_iter()
            .filter(|a| a.trace_id().to_hex() == "4bf92f3577b34da6a3ce929d0e0e4736")
            .collect();
        if ours.len() >= 3 || std::time::Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let names: Vec<String> = ours.iter().map(|a| a.display_name()).collect();
    assert_eq!(ours.len(), 3, "{names:?}");
    for activity in &ours {
        assert_eq!(tag(activity, "customer.tier"), "gold", "{}", activity.display_name());
        assert_eq!(tag(activity, "customer.id"), "c-42", "{}", activity.display_name());
        assert!(activity.tag("session.token").is_none(), "{}", activity.display_name());
    }
    assert!(ours.iter().any(|a| a.kind() == ActivityKind::Server));
}

#[test]
fn prefixes_and_all_entries_match_as_documented() {
    assert!(BaggageTags::with_prefix("app.").matches("app.tenant"));
    assert!(!BaggageTags::with_prefix("app.").matches("tenant"));
    assert!(BaggageTags::all().matches("anything"));
    assert!(!BaggageTags::keys(["a"]).matches("ab"));
}

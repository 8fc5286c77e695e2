//! Builds one trace across an `.await`, a spawned tokio task and a std thread, collects it
//! with a listener, and prints it as a tree with the ids that tie it together.
//!
//! Run: `cargo run -p skein --example quickstart`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use skein::*;

static SHOP: ActivitySource = ActivitySource::new("quickstart.shop").with_version("1.0.0");

/// Keeps every stopped activity of the shop's source.
struct Collect(Mutex<Vec<Activity>>);

impl ActivityListener for Collect {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name().starts_with("quickstart.")
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
    fn on_stopped(&self, activity: &Activity) {
        self.0.lock().unwrap().push(activity.clone());
    }
}

async fn load_cart(customer: &str) -> usize {
    let activity = SHOP.start_activity("load cart", ActivityKind::Client);
    if let Some(a) = &activity {
        a.set_tag("db.system.name", "sqlite")
            .set_tag("customer.id", customer.to_owned());
    }
    tokio::time::sleep(Duration::from_millis(15)).await; // the activity stays current across it
    3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let collected = Arc::new(Collect(Mutex::new(Vec::new())));
    let _listener = ActivitySource::add_activity_listener(collected.clone());

    async {
        let request = SHOP.start_activity("GET /checkout", ActivityKind::Server).unwrap();
        request.add_baggage("customer.tier", "gold");

        let items = load_cart("c-42").await;
        request.set_tag("cart.items", items);

        // A spawned task keeps the parent through `with_current`.
        let reserve = tokio::spawn(
            async {
                let _a = SHOP.start_activity("reserve stock", ActivityKind::Internal);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            .with_current(),
        );
        reserve.await.unwrap();

        // So does a thread, through `skein::with_current`.
        std::thread::spawn(skein::with_current(|| {
            let a = SHOP.start_activity("render receipt", ActivityKind::Internal).unwrap();
            let tier = a.baggage_item("customer.tier").unwrap_or_default();
            a.set_tag("customer.tier", tier);
            std::thread::sleep(Duration::from_millis(5));
        }))
        .join()
        .unwrap();
        request.set_status(ActivityStatusCode::Ok, None::<&str>);
    }
    .with_current()
    .await;

    let activities = collected.0.lock().unwrap().clone();
    let root = activities.iter().find(|a| a.parent().is_none()).expect("a root");
    println!("trace {}", root.trace_id());
    print_tree(&activities, root, 0);

    let mut consistent = true;
    for a in &activities {
        if let Some(parent) = a.parent() {
            consistent &= a.parent_span_id() == parent.span_id() && a.trace_id() == root.trace_id();
        }
    }
    println!(
        "\n{} activities, one trace, every parent span id matches its parent: {}",
        activities.len(),
        if consistent { "yes" } else { "NO" }
    );
    assert!(consistent && activities.len() == 4);
}

fn print_tree(all: &[Activity], node: &Activity, depth: usize) {
    let tags: Vec<String> = node.tags().iter().map(|t| format!("{}={}", t.key, t.value)).collect();
    println!(
        "{:indent$}{} [{:?}] span={} parent={} {:.1?} {}",
        "",
        node.display_name(),
        node.kind(),
        node.span_id(),
        node.parent_span_id(),
        node.duration(),
        tags.join(" "),
        indent = depth * 2
    );
    let mut children: Vec<&Activity> = all
        .iter()
        .filter(|a| a.parent().is_some_and(|p| p.ptr_eq(node)))
        .collect();
    children.sort_by_key(|a| a.start_time());
    for child in children {
        print_tree(all, child, depth + 1);
    }
}

//! Propagators: round trips between two "processes", header casing, formats, bad input.

mod common;

use std::collections::HashMap;

use common::Recorder;
use skein::propagation::*;
use skein::*;

static CLIENT: ActivitySource = ActivitySource::new("prop.client");
static SERVER: ActivitySource = ActivitySource::new("prop.server");

fn listen() -> ListenerRegistration {
    ActivitySource::add_activity_listener(Recorder::new("prop.", ActivitySamplingResult::AllDataAndRecorded))
}

/// What a server does with incoming headers.
fn serve(headers: &dyn PropagatorGetter, propagator: &dyn DistributedContextPropagator) -> Activity {
    let incoming = propagator.extract(headers);
    let server = SERVER
        .start_activity_with("GET /", ActivityKind::Server, incoming.start_options())
        .unwrap();
    incoming.apply_baggage(&server);
    server
}

#[test]
fn w3c_round_trip_with_state_and_baggage() {
    let _reg = listen();
    let client = CLIENT.start_activity("call", ActivityKind::Client).unwrap();
    client.set_trace_state(TraceState::parse("vendor=abc").unwrap());
    client.add_baggage("tier", "gold").add_baggage("user", "ana maría");
    let mut headers: HashMap<String, String> = HashMap::new();
    DefaultPropagator.inject(Some(&client), &mut headers);
    assert_eq!(headers["traceparent"], client.id().unwrap());
    assert_eq!(headers["tracestate"], "vendor=abc");
    assert_eq!(headers["baggage"], "user=ana%20mar%C3%ADa,tier=gold");
    assert!(!headers.contains_key("Request-Id"));

    // The "other process" has no current activity.
    let server = std::thread::spawn(move || {
        let server = serve(&headers, &DefaultPropagator);
        (
            server.trace_id(),
            server.parent_span_id(),
            server.has_remote_parent(),
            server.trace_state().header().to_owned(),
            server.baggage(),
            server.recorded(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(server.0, client.trace_id());
    assert_eq!(server.1, client.span_id());
    assert!(server.2);
    assert_eq!(server.3, "vendor=abc");
    assert_eq!(
        server.4,
        [
            ("user".to_owned(), "ana maría".to_owned()),
            ("tier".to_owned(), "gold".to_owned())
        ],
        "baggage keeps its order across the hop"
    );
    assert!(server.5);
}

#[test]
fn hierarchical_round_trip_uses_request_id_and_correlation_context() {
    // A hierarchical parent id reaches only listeners that read parent ids (as in .NET).
    let recorder = Recorder::new("prop.", ActivitySamplingResult::AllDataAndRecorded);
    *recorder.by_parent_id.lock().unwrap() = Some(ActivitySamplingResult::AllDataAndRecorded);
    let _reg = ActivitySource::add_activity_listener(recorder);
    let client = CLIENT
        .start_activity_with(
            "legacy call",
            ActivityKind::Client,
            ActivityStartOptions {
                id_format: ActivityIdFormat::Hierarchical,
                ..Default::default()
            },
        )
        .unwrap();
    client.add_baggage("k", "v 1");
    let mut headers: Vec<(String, String)> = Vec::new();
    DefaultPropagator.inject(Some(&client), &mut headers);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["Request-Id", "Correlation-Context"]);
    assert_eq!(headers[1].1, "k=v+1", "URL-encoded as .NET does");

    let (id, parent_id, trace_id, parent_span, baggage) = std::thread::spawn(move || {
        let s = serve(&headers, &DefaultPropagator);
        (
            s.id().unwrap(),
            s.parent_id(),
            s.trace_id(),
            s.parent_span_id(),
            s.baggage(),
        )
    })
    .join()
    .unwrap();
    let client_id = client.id().unwrap();
    assert!(id.starts_with(&client_id) && id.ends_with('_'), "{id}");
    assert_eq!(parent_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(trace_id, client.trace_id(), "both sides derive the same trace id");
    assert_eq!(
        parent_span,
        client.span_id(),
        "and the server points at the client's span"
    );
    assert_eq!(baggage, [("k".to_owned(), "v 1".to_owned())]);
}

#[test]
fn extraction_is_case_insensitive_and_joins_repeated_headers() {
    let mut headers: Vec<(String, String)> = vec![
        (
            "TraceParent".into(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        ),
        ("TRACESTATE".into(), "a=1".into()),
        ("tracestate".into(), "b=2".into()),
        ("Baggage".into(), "x=1".into()),
        ("baggage".into(), "y=2".into()),
    ];
    let got = DefaultPropagator.extract(&headers);
    assert_eq!(
        got.parent_id.as_deref(),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
    assert_eq!(got.trace_state.as_deref(), Some("a=1,b=2"));
    assert_eq!(got.baggage.len(), 2);
    // Setting replaces regardless of case.
    headers.set("traceparent", "new".into());
    assert_eq!(
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("traceparent"))
            .count(),
        1
    );

    let map: HashMap<String, String> = [("REQUEST-ID".to_owned(), "|abc.1.".to_owned())].into();
    assert_eq!(DefaultPropagator.extract(&map).parent_id.as_deref(), Some("|abc.1."));
}

#[test]
fn bad_input_means_no_parent_never_an_error() {
    let cases: &[&[(&str, &str)]] = &[
        &[("traceparent", "garbage")],
        &[("traceparent", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01")],
        &[("traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
        &[("traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01")],
        &[("Request-Id", "has spaces in it")],
        &[("Request-Id", "")],
    ];
    for case in cases {
        let headers: Vec<(String, String)> = case.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(DefaultPropagator.extract(&headers).parent_id, None, "{case:?}");
    }
    let long = "|".to_owned() + &"a".repeat(2000);
    let headers = vec![("Request-Id".to_owned(), long)];
    assert_eq!(DefaultPropagator.extract(&headers).parent_id, None);
    // A bad traceparent falls back to a good Request-Id.
    let headers = vec![
        ("traceparent".to_owned(), "junk".to_owned()),
        ("Request-Id".to_owned(), "|ok.1.".to_owned()),
    ];
    assert_eq!(DefaultPropagator.extract(&headers).parent_id.as_deref(), Some("|ok.1."));
    // An invalid tracestate is dropped, the parent kept.
    let headers = vec![
        (
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        ),
        ("tracestate".to_owned(), "BAD=1".to_owned()),
    ];
    let got = DefaultPropagator.extract(&headers);
    assert!(got.parent_id.is_some() && got.trace_state.is_none());

    // End to end: a server given garbage starts a fresh trace.
    let _reg = listen();
    let headers = vec![("traceparent".to_owned(), "00-nope".to_owned())];
    let server = std::thread::spawn(move || {
        let s = serve(&headers, &DefaultPropagator);
        (s.parent_span_id(), s.has_remote_parent(), s.trace_id().is_valid())
    })
    .join()
    .unwrap();
    assert_eq!(server, (SpanId::INVALID, false, true));
}

#[test]
fn pass_through_forwards_the_incoming_context_unchanged() {
    let _reg = listen();
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let headers = vec![
        ("traceparent".to_owned(), incoming.to_owned()),
        ("tracestate".to_owned(), "a=1".to_owned()),
        ("baggage".to_owned(), "k=v".to_owned()),
    ];
    let forwarded = std::thread::spawn(move || {
        let server = serve(&headers, &PassThroughPropagator);
        let _hop = CLIENT.start_activity("proxy hop", ActivityKind::Client).unwrap();
        let mut out: HashMap<String, String> = HashMap::new();
        PassThroughPropagator.inject(None, &mut out);
        drop(server);
        out
    })
    .join()
    .unwrap();
    assert_eq!(forwarded["traceparent"], incoming);
    assert_eq!(forwarded["tracestate"], "a=1");
    assert_eq!(forwarded["baggage"], "k=v");
}

#[test]
fn no_output_writes_nothing_and_default_needs_a_started_activity() {
    let a = Activity::new("x").start();
    let mut out: HashMap<String, String> = HashMap::new();
    NoOutputPropagator.inject(Some(&a), &mut out);
    assert!(out.is_empty());
    DefaultPropagator.inject(Some(&Activity::new("not started")), &mut out);
    DefaultPropagator.inject(None, &mut out);
    assert!(out.is_empty());
    assert_eq!(NoOutputPropagator.fields(), DefaultPropagator.fields());
}

#[test]
fn the_process_wide_propagator_can_be_replaced() {
    // Only this test changes it.
    let a = Activity::new("x").start();
    let mut out: HashMap<String, String> = HashMap::new();
    propagation::current().inject(Some(&a), &mut out);
    assert!(out.contains_key("traceparent"));
    propagation::set_current(NoOutputPropagator);
    let mut out: HashMap<String, String> = HashMap::new();
    propagation::current().inject(Some(&a), &mut out);
    assert!(out.is_empty());
    propagation::set_current(DefaultPropagator);
}

#[cfg(feature = "http")]
#[test]
fn header_map_carrier() {
    let a = Activity::new("x").start();
    a.add_baggage("k", "v");
    let mut headers = http::HeaderMap::new();
    DefaultPropagator.inject(Some(&a), &mut headers);
    assert_eq!(headers.get("traceparent").unwrap(), a.id().unwrap().as_str());
    headers.append("baggage", "k2=v2".parse().unwrap());
    let got = DefaultPropagator.extract(&headers);
    assert_eq!(got.baggage.len(), 2);
}

/// As .NET's propagators: extracted baggage comes last member first, so that adding each item
/// with `add_baggage` (which prepends) leaves the activity's baggage in header order; the
/// legacy header decodes `+` as a space.
#[test]
fn extracted_baggage_is_in_dotnets_order() {
    let _reg = listen();
    for (name, value) in [
        ("baggage", "a=1, b = 2,c=3"),
        ("Correlation-Context", "a=1, b=two+words, c=3"),
    ] {
        let headers = vec![(name.to_owned(), value.to_owned())];
        let got = DefaultPropagator.extract(&headers);
        let keys: Vec<&str> = got.baggage.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["c", "b", "a"], "{name}");
        let server = serve(&headers, &DefaultPropagator);
        let applied: Vec<String> = server.baggage().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let b = if name == "baggage" { "b=2" } else { "b=two words" };
        assert_eq!(applied, ["a=1", b, "c=3"], "{name}");
    }
}

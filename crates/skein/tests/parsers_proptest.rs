//! Property tests for every parser of network input: never panic, valid input round-trips.

use proptest::prelude::*;
use skein::propagation::*;
use skein::*;

fn lower_hex(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop::sample::select(b"0123456789abcdef".to_vec()), len)
        .prop_map(|v| String::from_utf8(v).unwrap())
}

fn state_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_*/-]{0,20}",
        "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z][a-z0-9_*/-]{0,8}"
    ]
}

fn state_value() -> impl Strategy<Value = String> {
    "[!-+\\--<>-~]([ !-+\\--<>-~]{0,20}[!-+\\--<>-~])?"
}

proptest! {
    #[test]
    fn traceparent_never_panics(s in ".{0,80}") {
        let _ = ActivityContext::parse(&s, Some(&s));
    }

    #[test]
    fn traceparent_round_trips(trace in lower_hex(32), span in lower_hex(16), flags in any::<u8>()) {
        let header = format!("00-{trace}-{span}-{flags:02x}");
        match ActivityContext::parse(&header, None) {
            Ok(ctx) => prop_assert_eq!(ctx.traceparent(), header),
            Err(_) => prop_assert!(trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0')),
        }
    }

    #[test]
    fn tracestate_never_panics(s in ".{0,300}") {
        let _ = TraceState::parse(&s);
    }

    #[test]
    fn tracestate_round_trips(members in proptest::collection::btree_map(state_key(), state_value(), 0..32)) {
        let header: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let header = header.join(",");
        let parsed = TraceState::parse(&header).unwrap();
        prop_assert_eq!(parsed.header(), header.as_str());
        for (k, v) in &members {
            prop_assert_eq!(parsed.get(k), Some(v.as_str()));
        }
    }

    #[test]
    fn baggage_never_panics(s in ".{0,400}") {
        let members = parse_baggage(&s);
        prop_assert!(members.len() <= BAGGAGE_MAX_MEMBERS);
    }

    #[test]
    fn baggage_round_trips(items in proptest::collection::vec(("[A-Za-z0-9!#$&'*+.^_`|~-]{1,12}", ".{0,24}"), 0..20)) {
        let header = format_baggage(items.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert!(header.len() <= BAGGAGE_MAX_BYTES);
        let back: Vec<(String, String)> = parse_baggage(&header).into_iter().map(|m| (m.key, m.value)).collect();
        prop_assert_eq!(back, items);
    }

    #[test]
    fn correlation_context_never_panics(s in ".{0,400}") {
        let _ = parse_correlation_context(&s);
    }

    #[test]
    fn correlation_context_round_trips(items in proptest::collection::vec((".{1,12}", ".{0,24}"), 0..20)) {
        let header = format_correlation_context(items.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // As .NET: keys and values come back trimmed of spaces and tabs, and members whose
        // key or value is then empty are skipped.
        let ows: &[char] = &[' ', '\t'];
        let expected: Vec<(String, String)> = items
            .iter()
            .map(|(k, v)| (k.trim_matches(ows).to_owned(), v.trim_matches(ows).to_owned()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect();
        prop_assert_eq!(parse_correlation_context(&header), expected);
    }

    #[test]
    fn request_id_handling_never_panics(s in ".{0,1200}") {
        let _ = skein::hierarchical::root_of(&s);
        let _ = skein::hierarchical::external_child_id(&s);
        let headers = vec![("Request-Id".to_owned(), s.clone()), ("Correlation-Context".to_owned(), s.clone())];
        let got = DefaultPropagator.extract(&headers);
        if let Some(id) = got.parent_id {
            // Whatever was accepted can parent an activity and yields a bounded id.
            let a = Activity::new("child");
            a.set_parent_id(&id);
            let a = a.start();
            prop_assert!(a.id().unwrap().len() <= skein::hierarchical::REQUEST_ID_MAX_LENGTH + 64);
        }
    }

    #[test]
    fn hierarchical_children_stay_bounded(depth in 1usize..400) {
        let mut id = skein::hierarchical::root_id();
        for n in 0..depth {
            id = skein::hierarchical::child_id(&id, n as u64 + 1000);
            prop_assert!(id.len() <= skein::hierarchical::REQUEST_ID_MAX_LENGTH);
        }
    }
}

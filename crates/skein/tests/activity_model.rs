//! The Activity model through the public API: start/stop/current, ids, tags, baggage,
//! trace state, sampling and listeners.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::Recorder;
use skein::*;

use ActivitySamplingResult::{AllData, AllDataAndRecorded, PropagationData};

#[test]
fn start_stop_current_and_restore() {
    static S: ActivitySource = ActivitySource::new("model.current");
    let rec = Recorder::new("model.current", AllDataAndRecorded);
    let _reg = ActivitySource::add_activity_listener(rec.clone());

    assert!(Activity::current().is_none());
    let a = S.start_activity("a", ActivityKind::Server).unwrap();
    assert!(Activity::current().unwrap().ptr_eq(&a));
    let b = S.start_activity("b", ActivityKind::Internal).unwrap();
    assert!(Activity::current().unwrap().ptr_eq(&b));
    assert!(b.parent().unwrap().ptr_eq(&a));
    assert_eq!(b.trace_id(), a.trace_id());
    assert_eq!(b.parent_span_id(), a.span_id());
    assert_eq!(b.parent_id(), a.id());
    assert_eq!(b.root_id(), Some(a.trace_id().to_hex()));
    assert!(!b.has_remote_parent());

    drop(b);
    assert!(Activity::current().unwrap().ptr_eq(&a));
    a.stop();
    assert!(Activity::current().is_none());
    a.stop(); // idempotent
    drop(a);
    assert_eq!(rec.stopped_names(), ["b", "a"]);
    assert_eq!(rec.started.lock().unwrap().len(), 2);
    // Listeners are notified at stop while the activity is still current.
    assert_eq!(rec.current_at_stop.lock().unwrap().as_slice(), [true, true]);
}

#[test]
fn out_of_order_stop_restores_the_saved_previous() {
    static S: ActivitySource = ActivitySource::new("model.out_of_order");
    let _reg = ActivitySource::add_activity_listener(Recorder::new("model.out_of_order", AllData));
    let a = S.start_activity("a", ActivityKind::Internal).unwrap();
    let b = S.start_activity("b", ActivityKind::Internal).unwrap();
    // Stopping `a` while `b` is current leaves `b` current (.NET would make what was current
    // before `a` current, cutting `b` off while it runs).
    a.stop();
    assert!(Activity::current().unwrap().ptr_eq(&b));
    // Stopping `b` restores what was current before `b`: `a`, which is stopped, so what was
    // current before `a` (nothing). A stopped activity is never current again.
    b.stop();
    assert!(Activity::current().is_none());
}

#[test]
fn a_detached_activity_has_the_current_parent_and_never_touches_the_current_slot() {
    static S: ActivitySource = ActivitySource::new("model.detached");
    let rec = Recorder::new("model.detached", AllDataAndRecorded);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let detached = || ActivityStartOptions {
        detached: true,
        tags: vec![Tag::new("k", "v")],
        ..Default::default()
    };

    let parent = S.start_activity("parent", ActivityKind::Server).unwrap();
    let child = S
        .start_activity_with("child", ActivityKind::Internal, detached())
        .unwrap();
    // Started under the current activity, which stays current.
    assert!(Activity::current().unwrap().ptr_eq(&parent));
    assert!(child.parent().unwrap().ptr_eq(&parent));
    assert_eq!(child.trace_id(), parent.trace_id());
    assert_eq!(child.parent_span_id(), parent.span_id());
    assert_eq!(child.tags(), [Tag::new("k", "v")]);
    // Made current and stopped there (both ways: `stop()` and dropping the owner), it stays
    // current: stopping a detached activity leaves the slot alone.
    let previous = Activity::set_current(Some(&child));
    assert!(previous.as_ref().unwrap().ptr_eq(&parent));
    drop(child);
    assert_eq!(Activity::current().unwrap().operation_name(), "child");
    Activity::set_current(previous.as_ref());
    let other = S
        .start_activity_with("other", ActivityKind::Internal, detached())
        .unwrap();
    other.stop();
    assert!(Activity::current().unwrap().ptr_eq(&parent));
    drop(other);
    drop(parent);
    assert!(Activity::current().is_none());

    // Without a current activity: a root, and the slot stays empty.
    let root = S
        .start_activity_with("root", ActivityKind::Internal, detached())
        .unwrap();
    assert!(Activity::current().is_none());
    assert!(root.parent().is_none());
    drop(root);
    assert!(Activity::current().is_none());
    assert_eq!(rec.stopped_names(), ["child", "other", "parent", "root"]);
}

#[test]
fn replace_current_hands_references_over_and_refuses_stopped_ones() {
    static S: ActivitySource = ActivitySource::new("model.replace_current");
    let _reg = ActivitySource::add_activity_listener(Recorder::new("model.replace_current", AllData));
    let a = S.start_activity("a", ActivityKind::Internal).unwrap();
    let b = S
        .start_activity_with(
            "b",
            ActivityKind::Internal,
            ActivityStartOptions {
                detached: true,
                ..Default::default()
            },
        )
        .unwrap();
    let previous = Activity::set_current(Some(&b));
    assert!(Activity::current().unwrap().ptr_eq(&b));
    // Putting `a` back hands over `previous` and returns the slot's reference to `b`.
    let slot = Activity::replace_current(previous).unwrap();
    assert!(slot.ptr_eq(&b));
    assert!(Activity::current().unwrap().ptr_eq(&a));
    drop(slot);
    assert!(!b.is_stopped(), "dropping a plain reference does not stop");
    // A stopped activity is not made current: what is current stays and is returned.
    b.stop();
    let returned = Activity::replace_current(Some(b.clone())).unwrap();
    assert!(returned.ptr_eq(&a));
    assert!(Activity::current().unwrap().ptr_eq(&a));
    drop(b);
    drop(a);
    assert!(Activity::current().is_none());
}

#[test]
fn events_go_to_the_current_activity_only_when_it_wants_all_data() {
    static RECORDED: ActivitySource = ActivitySource::new("model.current_event.recorded");
    static PROPAGATED: ActivitySource = ActivitySource::new("model.current_event.propagated");
    let _recorded =
        ActivitySource::add_activity_listener(Recorder::new("model.current_event.recorded", AllDataAndRecorded));
    let _propagated =
        ActivitySource::add_activity_listener(Recorder::new("model.current_event.propagated", PropagationData));
    let given_back = |result: Result<(), ActivityEvent>| result.expect_err("no activity takes it").name;

    // Nothing current: the event comes back.
    assert!(!Activity::is_current_all_data_requested());
    assert_eq!(
        given_back(Activity::add_event_to_current(ActivityEvent::new("lost"))),
        "lost"
    );

    // Propagation only: no data wanted, the event comes back.
    let propagated = PROPAGATED.start_activity("propagated", ActivityKind::Internal).unwrap();
    assert!(!Activity::is_current_all_data_requested());
    assert_eq!(
        given_back(Activity::add_event_to_current(ActivityEvent::new("kept out"))),
        "kept out"
    );
    assert!(propagated.events().is_empty());

    // Recorded: the event is the current activity's, not its parent's.
    let recorded = RECORDED.start_activity("recorded", ActivityKind::Internal).unwrap();
    assert!(Activity::is_current_all_data_requested());
    Activity::add_event_to_current(ActivityEvent::new("added").with_tags([Tag::new("n", 1i64)])).unwrap();
    let events = recorded.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "added");
    assert_eq!(*events[0].tags, [Tag::new("n", 1i64)]);
    assert!(propagated.events().is_empty());

    // A listener may turn data off while the activity runs.
    recorded.set_is_all_data_requested(false);
    assert!(!Activity::is_current_all_data_requested());
    assert!(Activity::add_event_to_current(ActivityEvent::new("late")).is_err());
    assert_eq!(recorded.events().len(), 1);
}
#[test]
fn drop_all_releases_siblings_and_their_parent_as_dropping_each_would() {
    static S: ActivitySource = ActivitySource::new("model.drop_all");
    let rec = Recorder::new("model.drop_all", AllDataAndRecorded);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    // Each activity holds a token; an activity's memory is released when its token is.
    let token = |a: &Activity| {
        let t = Arc::new(());
        a.set_custom_property("token", Some(t.clone()));
        t
    };
    let root = S.start_activity("root", ActivityKind::Server).unwrap();
    let root_token = token(&root);
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let child = S.start_activity("child", ActivityKind::Internal).unwrap();
        tokens.push(token(&child));
    }
    let other_root = S
        .start_activity_with(
            "other",
            ActivityKind::Internal,
            ActivityStartOptions {
                parent: ActivityParent::Root,
                ..Default::default()
            },
        )
        .unwrap();
    let grandchild = S.start_activity("grandchild", ActivityKind::Internal).unwrap();
    let grandchild_token = token(&grandchild);
    drop(grandchild);
    drop(other_root);
    drop(root);
    let kept_child = rec.stopped.lock().unwrap()[0].clone();
    rec.started.lock().unwrap().clear(); // the recorder's own references
    let stopped = std::mem::take(&mut *rec.stopped.lock().unwrap());
    assert_eq!(stopped.len(), 8);
    // Children first (sharing a parent), then the others; one child is still referenced.
    Activity::drop_all(stopped);
    assert!(
        tokens.iter().skip(1).all(|t| Arc::strong_count(t) == 1),
        "unreferenced children released"
    );
    assert_eq!(Arc::strong_count(&grandchild_token), 1);
    assert_eq!(Arc::strong_count(&tokens[0]), 2, "a child still referenced is kept");
    assert_eq!(Arc::strong_count(&root_token), 2, "and so is its parent");
    assert!(kept_child.parent().unwrap().operation_name() == "root");
    drop(kept_child);
    assert_eq!(Arc::strong_count(&tokens[0]), 1);
    assert_eq!(Arc::strong_count(&root_token), 1);
    // An owner handed to it is stopped, as dropping it would.
    let owner = S.start_activity("owner", ActivityKind::Internal).unwrap();
    Activity::drop_all([owner]);
    assert_eq!(rec.stopped_names(), ["owner"]);
    assert!(Activity::current().is_none());
}

#[test]
fn clones_do_not_stop_and_drop_of_the_owner_does() {
    static S: ActivitySource = ActivitySource::new("model.ownership");
    let rec = Recorder::new("model.ownership", AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let a = S.start_activity("a", ActivityKind::Internal).unwrap();
    let clone = a.clone();
    drop(Activity::current());
    drop(clone.clone());
    assert!(!a.is_stopped());
    drop(a);
    assert!(clone.is_stopped());
    assert!(clone.duration() > Duration::ZERO);
    assert_eq!(rec.stopped.lock().unwrap().len(), 1);
}

#[test]
fn no_listener_means_no_activity_and_removal_detaches() {
    static S: ActivitySource = ActivitySource::new("model.detach");
    assert!(!S.has_listeners());
    assert!(S.start_activity("x", ActivityKind::Internal).is_none());
    let rec = Recorder::new("model.detach", AllData);
    let reg = ActivitySource::add_activity_listener(rec.clone());
    assert!(S.has_listeners());
    drop(S.start_activity("x", ActivityKind::Internal));
    drop(reg);
    assert!(!S.has_listeners());
    assert!(S.start_activity("y", ActivityKind::Internal).is_none());
    assert_eq!(rec.stopped_names(), ["x"]);
}

#[test]
fn listeners_can_come_and_go_from_many_threads() {
    static S: ActivitySource = ActivitySource::new("model.threads");
    // Miri interprets every step: fewer rounds there.
    let (threads, rounds) = if cfg!(miri) { (4, 4) } else { (8, 50) };
    let threads: Vec<_> = (0..threads)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    let rec = Recorder::new("model.threads", AllData);
                    let reg = ActivitySource::add_activity_listener(rec.clone());
                    let a = S.start_activity(format!("t{i}"), ActivityKind::Internal).unwrap();
                    drop(a);
                    drop(reg);
                    assert!(rec.stopped_names().contains(&format!("t{i}")));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(!S.has_listeners());
}

#[test]
fn sampling_is_the_maximum_over_listeners() {
    static S: ActivitySource = ActivitySource::new("model.max");
    let none = Recorder::new("model.max", ActivitySamplingResult::None);
    let reg1 = ActivitySource::add_activity_listener(none.clone());
    assert!(S.start_activity("dropped", ActivityKind::Internal).is_none());

    let prop = Recorder::new("model.max", PropagationData);
    let reg2 = ActivitySource::add_activity_listener(prop.clone());
    let a = S.start_activity("propagation", ActivityKind::Internal).unwrap();
    assert!(!a.is_all_data_requested());
    assert!(!a.recorded());
    drop(a);

    let all = Recorder::new("model.max", AllData);
    let reg3 = ActivitySource::add_activity_listener(all.clone());
    let a = S.start_activity("all", ActivityKind::Internal).unwrap();
    assert!(a.is_all_data_requested() && !a.recorded());
    drop(a);

    let rec = Recorder::new("model.max", AllDataAndRecorded);
    let _reg4 = ActivitySource::add_activity_listener(rec.clone());
    let a = S.start_activity("recorded", ActivityKind::Internal).unwrap();
    assert!(a.is_all_data_requested() && a.recorded());
    drop(a);

    // Every attached listener was asked each time and told of every start and stop.
    assert_eq!(none.sampled.lock().unwrap().len(), 4);
    assert_eq!(none.stopped_names(), ["propagation", "all", "recorded"]);
    assert_eq!(rec.stopped_names(), ["recorded"]);
    drop((reg1, reg2, reg3));
}

#[test]
fn samplers_see_parent_context_tags_and_can_add_tags() {
    static S: ActivitySource = ActivitySource::new("model.sampler_view");
    struct Tagging;
    impl ActivityListener for Tagging {
        fn should_listen_to(&self, s: &ActivitySource) -> bool {
            s.name() == "model.sampler_view"
        }
        fn sample(&self, o: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            assert_eq!(o.kind(), ActivityKind::Client);
            if o.tags().iter().any(|t| t.key == "skip") {
                return ActivitySamplingResult::None;
            }
            o.add_sampling_tag("sampler.rule", "all");
            o.set_trace_state(TraceState::parse("skein=s1").unwrap());
            ActivitySamplingResult::AllDataAndRecorded
        }
    }
    let _reg = ActivitySource::add_activity_listener(Tagging);
    let skip = ActivityStartOptions {
        tags: vec![Tag::new("skip", true)],
        ..Default::default()
    };
    assert!(S.start_activity_with("x", ActivityKind::Client, skip).is_none());
    let a = S
        .start_activity_with(
            "y",
            ActivityKind::Client,
            ActivityStartOptions {
                tags: vec![Tag::new("creation", 1)],
                ..Default::default()
            },
        )
        .unwrap();
    let keys: Vec<_> = a.tags().into_iter().map(|t| t.key).collect();
    assert_eq!(keys, ["creation", "sampler.rule"]);
    assert_eq!(a.trace_state().header(), "skein=s1");
}

#[test]
fn ratio_sampler_uses_the_trace_id_the_activity_gets() {
    static S: ActivitySource = ActivitySource::new("model.ratio");
    struct Ratio(TraceIdRatioSampler, std::sync::Mutex<Vec<(TraceId, bool)>>);
    impl ActivityListener for Ratio {
        fn should_listen_to(&self, s: &ActivitySource) -> bool {
            s.name() == "model.ratio"
        }
        fn sample(&self, o: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            let r = self.0.should_sample(o);
            self.1
                .lock()
                .unwrap()
                .push((o.trace_id(), r == ActivitySamplingResult::AllDataAndRecorded));
            r
        }
    }
    let ratio = Arc::new(Ratio(TraceIdRatioSampler::new(0.5), Default::default()));
    let _reg = ActivitySource::add_activity_listener(ratio.clone());
    let mut sampled = 0;
    for _ in 0..400 {
        if let Some(a) = S.start_activity("r", ActivityKind::Internal) {
            let (id, yes) = *ratio.1.lock().unwrap().last().unwrap();
            assert!(yes);
            assert_eq!(a.trace_id(), id, "the activity keeps the id the sampler decided on");
            sampled += 1;
        }
    }
    assert!((120..280).contains(&sampled), "{sampled}");
}

#[test]
fn ratio_sampler_matches_opentelemetry() {
    // OpenTelemetry: (low 8 bytes big-endian >> 1) < ratio * 2^63.
    let s = TraceIdRatioSampler::new(0.25);
    assert!(s.samples(TraceId::from_u128(0x0000_0000_0000_0000_1fff_ffff_ffff_fffe)));
    assert!(!s.samples(TraceId::from_u128(0x0000_0000_0000_0000_4000_0000_0000_0000)));
    assert!(s.samples(TraceId::from_u128(0xffff_ffff_ffff_ffff_0000_0000_0000_0001)));
    assert!(TraceIdRatioSampler::new(1.0).samples(TraceId::from_u128(u128::MAX)));
    assert!(!TraceIdRatioSampler::new(0.0).samples(TraceId::from_u128(1)));
}

#[test]
fn parent_based_sampler_follows_the_parent() {
    static S: ActivitySource = ActivitySource::new("model.parent_based");
    struct Pb(ParentBasedSampler);
    impl ActivityListener for Pb {
        fn should_listen_to(&self, s: &ActivitySource) -> bool {
            s.name() == "model.parent_based"
        }
        fn sample(&self, o: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            self.0.should_sample(o)
        }
    }
    let _reg = ActivitySource::add_activity_listener(Pb(ParentBasedSampler::new(AlwaysOffSampler)));
    assert!(S.start_activity("root", ActivityKind::Server).is_none());
    let recorded_parent =
        ActivityContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None).unwrap();
    let a = S
        .start_activity_with(
            "child of sampled",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Context(recorded_parent),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(a.recorded() && a.is_all_data_requested() && a.has_remote_parent());
    drop(a);
    let a = S
        .start_activity_with(
            "child of unsampled",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
                ..Default::default()
            },
        )
        .expect("kept for propagation");
    assert!(!a.recorded() && !a.is_all_data_requested());
    assert_eq!(a.trace_id().to_hex(), "0af7651916cd43dd8448eb211c80319c");
}

#[test]
fn parent_id_string_uses_sample_using_parent_id_when_provided() {
    static S: ActivitySource = ActivitySource::new("model.parent_id");
    let rec = Recorder::new("model.parent_id", AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let w3c = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    // Not provided: `sample` is called with the parsed W3C context.
    let a = S
        .start_activity_with(
            "w3c",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Id(w3c),
                trace_state: Some("congo=t61rcWkgMzE"),
                ..Default::default()
            },
        )
        .unwrap();
    let (_, seen) = rec.sampled.lock().unwrap().last().unwrap().clone();
    assert_eq!(seen.traceparent(), w3c);
    assert!(seen.is_remote);
    assert_eq!(a.parent_id().as_deref(), Some(w3c));
    assert_eq!(a.trace_state().header(), "congo=t61rcWkgMzE");
    assert_eq!(a.parent_span_id().to_hex(), "b7ad6b7169203331");
    assert!(a.recorded(), "the remote recorded flag is inherited");
    assert!(a.has_remote_parent());
    drop(a);

    // Provided: it decides, and `sample` is not called.
    *rec.by_parent_id.lock().unwrap() = Some(PropagationData);
    let before = rec.sampled.lock().unwrap().len();
    let a = S
        .start_activity_with(
            "hier",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Id("|abc.1."),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(rec.sampled.lock().unwrap().len(), before);
    assert_eq!(rec.parent_ids_seen.lock().unwrap().as_slice(), ["|abc.1."]);
    assert!(!a.is_all_data_requested());
    assert_eq!(a.id_format(), ActivityIdFormat::Hierarchical);
    let id = a.id().unwrap();
    assert!(id.starts_with("|abc.1.") && id.ends_with('_'), "{id}");
    assert_eq!(a.parent_id().as_deref(), Some("|abc.1."));
    assert_eq!(a.root_id().as_deref(), Some("abc"));
    assert!(a.has_remote_parent());
    drop(a);

    // A hierarchical id and no `sample_using_parent_id`: this listener is not asked, as in
    // .NET, so nobody wants the activity (the fallback used to sample it as a root).
    *rec.by_parent_id.lock().unwrap() = Option::None;
    let before = rec.sampled.lock().unwrap().len();
    let hierarchical = ActivityStartOptions {
        parent: ActivityParent::Id("|abc.2."),
        ..Default::default()
    };
    assert!(S
        .start_activity_with("hier2", ActivityKind::Server, hierarchical.clone())
        .is_none());
    assert_eq!(rec.sampled.lock().unwrap().len(), before, "sample is not asked");

    // A listener that opts in decides as for a root, on the trace id of the id's root.
    struct AsRoot;
    impl ActivityListener for AsRoot {
        fn should_listen_to(&self, source: &ActivitySource) -> bool {
            source.name() == "model.parent_id"
        }
        fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            ActivitySamplingResult::None
        }
        fn sample_using_parent_id(
            &self,
            options: &ActivityCreationOptions<'_, &str>,
        ) -> Option<ActivitySamplingResult> {
            Some(options.sample_as_root(|root| {
                assert!(!root.parent().is_valid());
                root.add_sampling_tag("sampled.as", "root");
                AllData
            }))
        }
    }
    let _as_root = ActivitySource::add_activity_listener(AsRoot);
    let a = S
        .start_activity_with("hier3", ActivityKind::Server, hierarchical)
        .unwrap();
    assert_eq!(a.trace_id(), skein::hierarchical::derived_trace_id("|abc.2."));
    assert_eq!(a.tag("sampled.as").map(|v| v.to_string()).as_deref(), Some("root"));
}

#[test]
fn explicit_root_ignores_the_current_activity() {
    static S: ActivitySource = ActivitySource::new("model.root");
    let _reg = ActivitySource::add_activity_listener(Recorder::new("model.root", AllData));
    let outer = S.start_activity("outer", ActivityKind::Internal).unwrap();
    let root = S
        .start_activity_with(
            "connection_setup",
            ActivityKind::Internal,
            ActivityStartOptions {
                parent: ActivityParent::Root,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(root.parent().is_none());
    assert_ne!(root.trace_id(), outer.trace_id());
    assert_eq!(root.parent_span_id(), SpanId::INVALID);
    drop(root);
    assert!(Activity::current().unwrap().ptr_eq(&outer));
}

#[test]
fn create_activity_does_not_start_and_takes_the_parent_at_start() {
    static S: ActivitySource = ActivitySource::new("model.create");
    let rec = Recorder::new("model.create", AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let created = S
        .create_activity("later", ActivityKind::Producer, ActivityStartOptions::default())
        .unwrap();
    assert!(created.id().is_none());
    assert!(Activity::current().is_none());
    assert!(rec.started.lock().unwrap().is_empty());
    let parent = S.start_activity("parent", ActivityKind::Internal).unwrap();
    let started = created.start();
    assert!(started.parent().unwrap().ptr_eq(&parent));
    assert_eq!(started.kind(), ActivityKind::Producer);
    assert_eq!(rec.started.lock().unwrap().len(), 2);
}

#[test]
fn explicit_times_and_duration() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a = Activity::new("timed");
    a.set_start_time(start);
    let a = a.start();
    assert_eq!(a.start_time(), start);
    a.set_end_time(start + Duration::from_millis(250));
    a.stop();
    assert_eq!(a.duration(), Duration::from_millis(250));
    assert_eq!(a.end_time(), Some(start + Duration::from_millis(250)));
}

#[test]
fn tag_semantics() {
    let a = Activity::new("tags");
    a.add_tag("s", "x")
        .add_tag("i", 1i64)
        .add_tag("b", true)
        .add_tag("f", 1.5)
        .add_tag("i", 2);
    a.add_tag("arr", vec![1i64, 2, 3]);
    assert_eq!(a.tag("i"), Some(TagValue::I64(1)), "first match wins");
    a.set_tag("i", 10);
    let values: Vec<String> = a
        .tags()
        .iter()
        .filter(|t| t.key == "i")
        .map(|t| t.value.to_string())
        .collect();
    assert_eq!(values, ["10", "2"], "set replaces the first match only");
    a.set_tag("new", "appended");
    assert_eq!(a.tags().last().unwrap().key, "new");
    a.set_tag("s", None::<&str>);
    assert!(a.tag("s").is_none());
    a.remove_tag("i");
    assert_eq!(a.tag("i"), Some(TagValue::I64(2)));
    let keys: Vec<_> = a.tags().into_iter().map(|t| t.key.into_owned()).collect();
    assert_eq!(keys, ["b", "f", "i", "arr", "new"], "insertion order is kept");
}

#[test]
fn status_description_only_for_error() {
    let a = Activity::new("status");
    a.set_status(ActivityStatusCode::Ok, Some("ignored"));
    assert_eq!(a.status(), ActivityStatusCode::Ok);
    assert_eq!(a.status_description(), Option::None);
    a.set_status(ActivityStatusCode::Error, Some("boom"));
    assert_eq!(a.status_description().as_deref(), Some("boom"));
}

#[test]
fn display_name_defaults_to_operation_name() {
    let a = Activity::new("GET");
    assert_eq!(a.display_name(), "GET");
    a.set_display_name("GET /orders/{id}");
    assert_eq!(a.display_name(), "GET /orders/{id}");
    assert_eq!(a.operation_name(), "GET");
}

#[test]
fn events_links_and_exceptions() {
    static S: ActivitySource = ActivitySource::new("model.exceptions");
    let _reg = ActivitySource::add_activity_listener(Recorder::new("model.exceptions", AllData));
    let a = S.start_activity("op", ActivityKind::Internal).unwrap();
    a.add_event(ActivityEvent::new("cache miss").with_tags([Tag::new("key", "k1")]));
    let ctx = ActivityContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None).unwrap();
    a.add_link(ActivityLink::new(ctx.clone()).with_tags([Tag::new("link.kind", "conn")]));

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("payment failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let err = Outer(std::io::Error::other("connection reset"));
    a.add_exception(&err);
    let boxed: Box<dyn std::error::Error> = Box::new(std::io::Error::other("dyn"));
    a.add_exception(boxed.as_ref());

    let events = a.events();
    assert_eq!(events[0].name, "cache miss");
    let ex = &events[1];
    assert_eq!(ex.name, "exception");
    let get = |k: &str| ex.tags.iter().find(|t| t.key == k).unwrap().value.to_string();
    assert!(get("exception.type").ends_with("Outer"));
    assert_eq!(get("exception.message"), "payment failed");
    assert!(get("exception.stacktrace").contains("Caused by: connection reset"));
    assert_eq!(
        get("recorder.saw"),
        "payment failed",
        "the listener's exception recorder ran"
    );
    assert_eq!(events[2].tags[0].value.to_string(), "core::error::Error");
    assert_eq!(a.links()[0].context, ctx);
}

#[test]
fn baggage_prepends_and_walks_parents() {
    let parent = Activity::new("parent").start();
    parent.add_baggage("a", "1").add_baggage("b", "2");
    let child = Activity::new("child").start();
    child.add_baggage("a", "child");
    assert_eq!(child.baggage_item("a").as_deref(), Some("child"));
    assert_eq!(child.baggage_item("b").as_deref(), Some("2"));
    let all: Vec<_> = child.baggage().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(all, ["a=child", "b=2", "a=1"]);
    child.set_baggage("a", None::<&str>);
    assert_eq!(child.baggage_item("a").as_deref(), Some("1"));
    child.set_baggage("c", Some("3"));
    child.set_baggage("c", Some("4"));
    assert_eq!(child.baggage().iter().filter(|(k, _)| k == "c").count(), 1);
    drop(child);
    drop(parent);
}

#[test]
fn trace_state_is_inherited_unless_set_locally() {
    let parent = Activity::new("parent");
    parent.set_parent_context(
        ActivityContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Some("a=1")).unwrap(),
    );
    let parent = parent.start();
    assert_eq!(parent.trace_state().header(), "a=1");
    let child = Activity::new("child").start();
    assert_eq!(child.trace_state().header(), "a=1");
    child.set_trace_state(TraceState::parse("b=2").unwrap());
    let grandchild = Activity::new("grandchild").start();
    assert_eq!(grandchild.trace_state().header(), "b=2");
    assert_eq!(parent.trace_state().header(), "a=1");
}

#[test]
fn custom_properties() {
    let a = Activity::new("props");
    a.set_custom_property("request", Some(Arc::new(String::from("GET /"))));
    let v = a.custom_property("request").unwrap();
    assert_eq!(v.downcast_ref::<String>().unwrap(), "GET /");
    a.set_custom_property("request", Option::None);
    assert!(a.custom_property("request").is_none());
}

#[test]
fn hierarchical_activities_from_a_source() {
    static S: ActivitySource = ActivitySource::new("model.hier");
    let _reg = ActivitySource::add_activity_listener(Recorder::new("model.hier", AllDataAndRecorded));
    let root = S
        .start_activity_with(
            "root",
            ActivityKind::Server,
            ActivityStartOptions {
                id_format: ActivityIdFormat::Hierarchical,
                ..Default::default()
            },
        )
        .unwrap();
    let root_id = root.id().unwrap();
    assert!(root_id.starts_with('|') && root_id.ends_with('.'));
    let c1 = S.start_activity("c1", ActivityKind::Internal).unwrap();
    assert_eq!(
        c1.id_format(),
        ActivityIdFormat::Hierarchical,
        "children follow the parent's format"
    );
    assert_eq!(c1.id().unwrap(), format!("{root_id}1."));
    drop(c1);
    let c2 = S.start_activity("c2", ActivityKind::Internal).unwrap();
    assert_eq!(c2.id().unwrap(), format!("{root_id}2."));
    assert_eq!(c2.parent_id(), Some(root_id.clone()));
    // Export ids: one trace, children point at the parent's span id.
    assert_eq!(c2.trace_id(), root.trace_id());
    assert_eq!(c2.parent_span_id(), root.span_id());
    assert!(c2.recorded());
}

#[test]
fn owns_heap_memory_tells_static_data_from_allocated() {
    static S: ActivitySource = ActivitySource::new("model.heap");
    let _reg = ActivitySource::add_activity_listener(Recorder::new("model.heap", AllData));
    let start = |name: &'static str| S.start_activity(name, ActivityKind::Internal).unwrap();
    let plain = start("static name");
    plain.add_tag("k", "static value").add_tag("n", 1);
    assert!(!plain.owns_heap_memory());
    let short_tag = start("static name");
    short_tag.add_tag("k", String::from("owned"));
    assert!(!short_tag.owns_heap_memory(), "short text is kept inline");
    let owned_tag = start("static name");
    owned_tag.add_tag("k", String::from("a value longer than the inline room"));
    assert!(owned_tag.owns_heap_memory());
    let owned_name = S.start_activity(format!("GET {}", 1), ActivityKind::Internal).unwrap();
    assert!(owned_name.owns_heap_memory());
    let many = start("static name");
    for _ in 0..5 {
        many.add_tag("k", 1);
    }
    assert!(many.owns_heap_memory(), "tags past the inline room live on the heap");
    let named = start("static name");
    named.set_display_name("display");
    assert!(named.owns_heap_memory());
    assert!(
        Activity::new("hand-made").owns_heap_memory(),
        "its pre-start choices are boxed"
    );
}

/// Samples with a fixed answer and, when `tag` is set, adds a sampling tag: that sends the
/// start through the general path instead of the direct one for plain children of the
/// current activity. Both must make the same activity.
struct FixedSampler {
    source: &'static str,
    result: ActivitySamplingResult,
    tag: bool,
}

impl ActivityListener for FixedSampler {
    fn should_listen_to(&self, s: &ActivitySource) -> bool {
        s.name() == self.source
    }
    fn sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        if self.tag {
            options.add_sampling_tag("sampler", "fixed");
        }
        self.result
    }
}

#[test]
fn children_of_the_current_activity_are_the_same_on_both_start_paths() {
    static DIRECT: ActivitySource = ActivitySource::new("model.paths.direct");
    static GENERAL: ActivitySource = ActivitySource::new("model.paths.general");
    static PARENTS: ActivitySource = ActivitySource::new("model.paths.parents");
    let _parents = ActivitySource::add_activity_listener(FixedSampler {
        source: "model.paths.parents",
        result: ActivitySamplingResult::AllDataAndRecorded,
        tag: false,
    });
    let parent_context = |recorded: bool, trace_state: &str| {
        ActivityContext::new(
            TraceId::random(),
            SpanId::random(),
            if recorded {
                ActivityTraceFlags::RECORDED | ActivityTraceFlags::RANDOM
            } else {
                ActivityTraceFlags::NONE
            },
            TraceState::parse(trace_state).unwrap(),
            true,
        )
    };
    for result in [
        ActivitySamplingResult::PropagationData,
        ActivitySamplingResult::AllData,
        ActivitySamplingResult::AllDataAndRecorded,
    ] {
        let _direct = ActivitySource::add_activity_listener(FixedSampler {
            source: "model.paths.direct",
            result,
            tag: false,
        });
        let _general = ActivitySource::add_activity_listener(FixedSampler {
            source: "model.paths.general",
            result,
            tag: true,
        });
        // No parent, a recorded remote parent with trace state, an unrecorded one, and a
        // parent whose own trace state was set after start.
        let parents: Vec<Option<Activity>> = vec![
            None,
            Some(start_under(&PARENTS, parent_context(true, "a=1"))),
            Some(start_under(&PARENTS, parent_context(false, ""))),
            Some({
                let p = PARENTS.start_activity("local state", ActivityKind::Internal).unwrap();
                p.set_trace_state(TraceState::parse("local=2").unwrap());
                p
            }),
        ];
        for parent in &parents {
            let _current = CurrentGuard::new(parent.as_ref());
            let direct = DIRECT.start_activity("child", ActivityKind::Client).unwrap();
            let direct_view = view(&direct);
            drop(direct);
            let general = GENERAL.start_activity("child", ActivityKind::Client).unwrap();
            let general_view = view(&general);
            assert_eq!(general.tag("sampler").unwrap().to_string(), "fixed");
            drop(general);
            assert_eq!(
                direct_view.same_as(parent),
                general_view.same_as(parent),
                "{result:?} {parent:?}"
            );
            assert_eq!(direct_view.flags, general_view.flags, "{result:?} {parent:?}");
            assert_eq!(direct_view.rest, general_view.rest, "{result:?} {parent:?}");
        }
    }
}

fn start_under(source: &'static ActivitySource, context: ActivityContext) -> Activity {
    let activity = source
        .start_activity_with(
            "parent",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Context(context),
                ..Default::default()
            },
        )
        .unwrap();
    // Started here only to serve as a parent: not current.
    Activity::set_current(activity.parent().as_ref());
    activity
}

/// What both paths must agree on.
struct View {
    trace_id: TraceId,
    parent_span_id: SpanId,
    parent: Option<Activity>,
    flags: ActivityTraceFlags,
    rest: (String, ActivityIdFormat, bool, bool, bool, bool, Option<usize>),
}

impl View {
    /// (same trace as the parent, parent span id is the parent's, `parent()` is the parent)
    fn same_as(&self, parent: &Option<Activity>) -> (bool, bool, bool) {
        match parent {
            Some(p) => (
                self.trace_id == p.trace_id(),
                self.parent_span_id == p.span_id(),
                self.parent.as_ref().is_some_and(|a| a.ptr_eq(p)),
            ),
            None => (
                self.trace_id.is_valid(),
                self.parent_span_id == SpanId::INVALID,
                self.parent.is_none(),
            ),
        }
    }
}

fn view(a: &Activity) -> View {
    View {
        trace_id: a.trace_id(),
        parent_span_id: a.parent_span_id(),
        parent: a.parent(),
        flags: a.trace_flags(),
        rest: (
            a.trace_state().header().to_owned(),
            a.id_format(),
            a.is_all_data_requested(),
            a.recorded(),
            a.has_remote_parent(),
            Activity::current().is_some_and(|c| c.ptr_eq(a)),
            a.id().map(|id| id.len()),
        ),
    }
}

/// Queues what it is given, as an exporter's listener does.
struct Keeper {
    kept: std::sync::Mutex<Vec<(Activity, Option<String>)>>,
}

impl ActivityListener for Keeper {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == "model.keeper"
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        AllDataAndRecorded
    }
    fn keeps_stopped_activities(&self) -> bool {
        true
    }
    fn on_stopped_owned(&self, activity: Activity) {
        let current = Activity::current().map(|c| c.operation_name().to_owned());
        self.kept.lock().unwrap().push((activity, current));
    }
}

/// Notes whether each stopping activity is current, keeping no reference to it.
struct Watcher(std::sync::Mutex<Vec<bool>>);

impl ActivityListener for Watcher {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == "model.keeper"
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        AllData
    }
    fn on_stopped(&self, activity: &Activity) {
        let current = Activity::current().is_some_and(|c| c.ptr_eq(activity));
        self.0.lock().unwrap().push(current);
    }
}

#[test]
fn a_listener_that_keeps_stopped_activities_gets_them_after_the_previous_is_restored() {
    static S: ActivitySource = ActivitySource::new("model.keeper");
    let watcher = Arc::new(Watcher(Default::default()));
    let _first = ActivitySource::add_activity_listener(watcher.clone());
    let keeper = Arc::new(Keeper {
        kept: Default::default(),
    });
    let _last = ActivitySource::add_activity_listener(keeper.clone());
    // Alive as long as an activity holding it is.
    let marker: Arc<dyn std::any::Any + Send + Sync> = Arc::new(());

    let a = S.start_activity("a", ActivityKind::Server).unwrap();
    let b = S.start_activity("b", ActivityKind::Internal).unwrap();
    b.set_custom_property("marker", Some(marker.clone()));
    drop(b); // the only other reference is the current slot's: the two are merged
    let c = S.start_activity("c", ActivityKind::Internal).unwrap();
    c.set_custom_property("marker", Some(marker.clone()));
    let c_clone = c.clone();
    drop(c); // a clone is out: the slot's reference is released the usual way
    assert!(Activity::current().unwrap().ptr_eq(&a));

    // Listeners before the last still see the stopping activity current.
    assert_eq!(watcher.0.lock().unwrap().as_slice(), [true, true]);
    {
        let kept = keeper.kept.lock().unwrap();
        let seen: Vec<_> = kept
            .iter()
            .map(|(activity, current)| (activity.operation_name().to_owned(), current.clone()))
            .collect();
        assert_eq!(seen, [("b".into(), Some("a".into())), ("c".into(), Some("a".into()))]);
        assert!(kept.iter().all(|(activity, _)| activity.is_stopped()));
    }
    assert_eq!(Arc::strong_count(&marker), 3, "both kept activities are alive");
    drop(c_clone);
    assert_eq!(Arc::strong_count(&marker), 3, "the listener's references keep them");
    keeper.kept.lock().unwrap().clear();
    assert_eq!(
        Arc::strong_count(&marker),
        1,
        "both were freed with the listener's references"
    );
    drop(a);
}

#[test]
fn a_parent_lives_exactly_as_long_as_its_last_reference_however_many_children_it_had() {
    static S: ActivitySource = ActivitySource::new("model.many_children");
    // Keeps no reference to what it samples.
    let _listener = ActivitySource::add_activity_listener(FixedSampler {
        source: "model.many_children",
        result: AllData,
        tag: false,
    });
    // Alive as long as the parent is.
    let marker: Arc<dyn std::any::Any + Send + Sync> = Arc::new(());
    let parent = S.start_activity("parent", ActivityKind::Server).unwrap();
    parent.set_custom_property("marker", Some(marker.clone()));

    // Many children, on both start paths and on another thread, each holding its parent.
    let mut children: Vec<Activity> = (0..40)
        .map(|_| {
            let child = S.start_activity("child", ActivityKind::Internal).unwrap();
            child.stop();
            child
        })
        .collect();
    let created = S
        .create_activity("created", ActivityKind::Internal, ActivityStartOptions::default())
        .unwrap()
        .start();
    created.stop();
    children.push(created);
    let elsewhere = std::thread::spawn(skein::with_current(|| {
        (0..20)
            .map(|_| {
                let child = S.start_activity("elsewhere", ActivityKind::Internal).unwrap();
                child.stop();
                child
            })
            .collect::<Vec<_>>()
    }))
    .join()
    .unwrap();
    assert!(children
        .iter()
        .chain(&elsewhere)
        .all(|c| c.parent().unwrap().ptr_eq(&parent)));
    assert!(Activity::current().unwrap().ptr_eq(&parent));

    drop(parent);
    assert!(Activity::current().is_none());
    assert_eq!(Arc::strong_count(&marker), 2, "the children keep their parent");
    drop(elsewhere);
    let last = children.remove(7);
    drop(children);
    assert_eq!(Arc::strong_count(&marker), 2, "one child keeps its parent");
    drop(last);
    assert_eq!(Arc::strong_count(&marker), 1, "freed with the last child");
}

/// Counts `on_started` calls, and says whether it wants them.
struct StartCounter {
    wants: bool,
    started: std::sync::atomic::AtomicUsize,
}

impl ActivityListener for StartCounter {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name().starts_with("model.starts")
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        AllData
    }
    fn on_started(&self, _: &Activity) {
        self.started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn wants_started_activities(&self) -> bool {
        self.wants
    }
}

#[test]
fn on_started_goes_only_to_listeners_that_want_it_on_every_start_path() {
    static ONE: ActivitySource = ActivitySource::new("model.starts.one");
    static BOTH: ActivitySource = ActivitySource::new("model.starts.both");
    let counter = |wants| {
        Arc::new(StartCounter {
            wants,
            started: Default::default(),
        })
    };
    let (wants, declines) = (counter(true), counter(false));
    let _declines = ActivitySource::add_activity_listener(declines.clone());
    let start_three_ways = |source: &'static ActivitySource| {
        let a = source.start_activity("plain", ActivityKind::Internal).unwrap();
        let b = source
            .start_activity_with("with options", ActivityKind::Internal, ActivityStartOptions::default())
            .unwrap();
        let c = source
            .create_activity("created", ActivityKind::Internal, ActivityStartOptions::default())
            .unwrap()
            .start();
        // Started all the same, each under the one before.
        assert!(c.parent().unwrap().ptr_eq(&b) && b.parent().unwrap().ptr_eq(&a));
    };

    start_three_ways(&ONE); // only a listener that declines starts
    let _wants = ActivitySource::add_activity_listener(wants.clone());
    start_three_ways(&BOTH);
    let count = |c: &StartCounter| c.started.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&declines), 0);
    assert_eq!(count(&wants), 3);
}

/// Issue: nothing registered the unnamed source, so listeners that wanted it never heard of
/// activities made with `Activity::new` (as .NET's `new Activity(name)`, reported to
/// listeners of the source with the empty name).
#[test]
fn activities_made_with_new_reach_listeners_of_the_unnamed_source() {
    struct Unnamed(Mutex<Vec<String>>);
    impl ActivityListener for Unnamed {
        fn should_listen_to(&self, source: &ActivitySource) -> bool {
            source.name().is_empty()
        }
        fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            AllData
        }
        fn on_started(&self, activity: &Activity) {
            self.0
                .lock()
                .unwrap()
                .push(format!("start {}", activity.operation_name()));
        }
        fn on_stopped(&self, activity: &Activity) {
            self.0
                .lock()
                .unwrap()
                .push(format!("stop {}", activity.operation_name()));
        }
    }
    let seen = Arc::new(Unnamed(Mutex::new(Vec::new())));
    let _registration = ActivitySource::add_activity_listener(seen.clone());
    let activity = Activity::new("made with new").start();
    assert!(std::ptr::eq(activity.source(), ActivitySource::unnamed()));
    activity.stop();
    let seen: Vec<String> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.ends_with("made with new"))
        .cloned()
        .collect();
    assert_eq!(seen, ["start made with new", "stop made with new"]);
}

/// Issue: stopping (or dropping) an activity on a thread where it was not current made that
/// thread's current activity the stopped one's previous, and the thread where it was current
/// kept handing the stopped activity out as the parent of new ones.
#[test]
fn stopping_on_another_thread_leaves_both_threads_current_activities_right() {
    let rec = Recorder::new("model.elsewhere", AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    static S: ActivitySource = ActivitySource::new("model.elsewhere");

    for by_drop in [false, true] {
        let outer = S.start_activity("outer", ActivityKind::Internal).unwrap();
        let inner = S.start_activity("inner", ActivityKind::Internal).unwrap();
        assert!(Activity::current().unwrap().ptr_eq(&inner));
        let inner_id = inner.span_id();

        let other_thread = std::thread::spawn(move || {
            let there = S.start_activity("there", ActivityKind::Internal).unwrap();
            if by_drop {
                drop(inner);
            } else {
                inner.stop();
            }
            // The other thread's current activity is untouched.
            let current = Activity::current().expect("still current there");
            assert!(current.ptr_eq(&there), "{current:?}");
            drop(there);
            assert!(Activity::current().is_none());
        });
        other_thread.join().unwrap();

        // Here the stopped activity is no longer current, and not a parent.
        let current = Activity::current().expect("the outer one");
        assert!(current.ptr_eq(&outer), "by_drop={by_drop}: {current:?}");
        let child = S.start_activity("child", ActivityKind::Internal).unwrap();
        assert_eq!(child.parent_span_id(), outer.span_id(), "by_drop={by_drop}");
        assert_ne!(child.parent_span_id(), inner_id);
        drop(child);
        drop(outer);
        assert!(Activity::current().is_none(), "by_drop={by_drop}");
    }
}

/// As in .NET: a stopped or never-started activity cannot be made current.
#[test]
fn stopped_or_unstarted_activities_are_not_made_current() {
    let rec = Recorder::new("model.setcurrent", AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    static S: ActivitySource = ActivitySource::new("model.setcurrent");

    let running = S.start_activity("running", ActivityKind::Internal).unwrap();
    let stopped = S.start_activity("stopped", ActivityKind::Internal).unwrap();
    stopped.stop();
    let unstarted = S
        .create_activity("unstarted", ActivityKind::Internal, ActivityStartOptions::default())
        .unwrap();
    for refused in [&stopped, &unstarted] {
        let returned = Activity::set_current(Some(refused));
        assert!(returned.unwrap().ptr_eq(&running));
        assert!(Activity::current().unwrap().ptr_eq(&running));
        {
            let _guard = refused.enter();
            assert!(Activity::current().unwrap().ptr_eq(&running));
        }
        assert!(Activity::current().unwrap().ptr_eq(&running));
    }
    drop(running);
}

/// A propagation-only activity is never `recorded`, whatever its parent (as OpenTelemetry's
/// SDKs propagate a dropped span), so the services downstream do not record its trace.
#[test]
fn propagation_only_activities_are_not_recorded_under_a_recorded_parent() {
    let rec = Recorder::new("model.propagation_only", PropagationData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    static S: ActivitySource = ActivitySource::new("model.propagation_only");
    let remote = ActivityContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    let from_remote = S
        .start_activity_with(
            "remote parent",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Context(remote.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(from_remote.trace_id(), remote.trace_id);
    assert!(!from_remote.recorded());
    drop(from_remote);

    let parent = Activity::new("recorded parent");
    parent.set_trace_flags(ActivityTraceFlags::RECORDED);
    let parent = parent.start();
    assert!(parent.recorded());
    let child = S.start_activity("local child", ActivityKind::Internal).unwrap();
    assert!(!child.recorded());
    assert!(!child.is_all_data_requested());
}

/// As .NET: a created activity answers its parent's ids before start; the first parent set
/// wins, empty ids are ignored; a W3C-looking id with bad hex starts a new W3C trace instead
/// of one hashed from it.
#[test]
fn a_created_activity_answers_its_parents_ids_before_start() {
    let rec = Recorder::new("model.before_start", AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    static S: ActivitySource = ActivitySource::new("model.before_start");
    let create = || {
        S.create_activity("created", ActivityKind::Server, ActivityStartOptions::default())
            .unwrap()
    };
    let w3c = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    let a = create();
    assert_eq!(a.parent_id(), None);
    a.set_parent_id("");
    assert_eq!(a.parent_id(), None, "empty ids are ignored");
    a.set_parent_id(w3c);
    a.set_parent_id("|other.1.");
    assert_eq!(a.parent_id().as_deref(), Some(w3c), "the first one wins");
    assert_eq!(a.root_id().as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
    assert_eq!(a.trace_id().to_hex(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(a.parent_span_id().to_hex(), "b7ad6b7169203331");
    let a = a.start();
    assert_eq!(a.trace_id().to_hex(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(a.parent_id().as_deref(), Some(w3c));
    drop(a);

    let h = create();
    h.set_parent_id("|abc.1.");
    assert_eq!(h.root_id().as_deref(), Some("abc"));
    assert_eq!(h.parent_id().as_deref(), Some("|abc.1."));
    let started = h.start();
    assert_eq!(started.trace_id(), skein::hierarchical::derived_trace_id("|abc.1."));
    drop(started);

    let c = create();
    let context = ActivityContext::parse(w3c, None).unwrap();
    c.set_parent_context(context.clone());
    c.set_parent_id("|ignored.");
    assert_eq!(c.parent_id().as_deref(), Some(w3c));
    assert_eq!(c.trace_id(), context.trace_id);
    drop(c);

    // W3C-looking (55 characters, version 00) but not hex: not hashed into ids.
    let bad = "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01";
    let b = create();
    b.set_parent_id(bad);
    assert_eq!(b.root_id().as_deref(), Some("0af7651916cd43dd8448eb211c80319z"));
    assert!(!b.trace_id().is_valid());
    let b = b.start();
    assert_eq!(b.id_format(), ActivityIdFormat::W3C);
    assert!(b.trace_id().is_valid());
    assert_ne!(b.trace_id(), skein::hierarchical::derived_trace_id(bad));
    assert!(!b.parent_span_id().is_valid());
    assert_eq!(b.parent_id().as_deref(), Some(bad));
}

/// Delegates to a parent-based sampler, counting the calls; says what it decides without
/// being asked only if `declares`.
struct Delegating {
    name: &'static str,
    sampler: ParentBasedSampler,
    declares: bool,
    wants_started: bool,
    asked: std::sync::atomic::AtomicUsize,
    started: Mutex<Vec<String>>,
    /// (name, recorded, all data requested) of each stopped activity.
    stopped: Mutex<Vec<(String, bool, bool)>>,
}

impl Delegating {
    fn new(name: &'static str, sampler: ParentBasedSampler, declares: bool) -> Arc<Delegating> {
        Arc::new(Delegating {
            name,
            sampler,
            declares,
            wants_started: false,
            asked: Default::default(),
            started: Mutex::default(),
            stopped: Mutex::default(),
        })
    }

    fn asked(&self) -> usize {
        self.asked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ActivityListener for Delegating {
    fn should_listen_to(&self, s: &ActivitySource) -> bool {
        s.name() == self.name
    }
    fn sample(&self, o: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sampler.should_sample(o)
    }
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        self.sampler.local_parent_decision().filter(|_| self.declares)
    }
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        self.sampler.root_decision().filter(|_| self.declares)
    }
    fn wants_started_activities(&self) -> bool {
        self.wants_started
    }
    fn on_started(&self, a: &Activity) {
        self.started.lock().unwrap().push(a.display_name());
    }
    fn on_stopped(&self, a: &Activity) {
        let seen = (a.display_name(), a.recorded(), a.is_all_data_requested());
        self.stopped.lock().unwrap().push(seen);
    }
}

/// A root, a child, the same through start options (tags, detached), a child of an
/// unrecorded parent (from an incoming `-00` traceparent) and a grandchild under it, from
/// `source`.
fn family(source: &'static ActivitySource) {
    let root = source.start_activity("root", ActivityKind::Server);
    drop(source.start_activity("child", ActivityKind::Internal));
    drop(root);
    let tagged = |detached| ActivityStartOptions {
        tags: vec![Tag::new("order.id", 42)],
        detached,
        ..Default::default()
    };
    let root = source.start_activity_with("root with tags", ActivityKind::Server, tagged(false));
    drop(source.start_activity_with("detached child", ActivityKind::Internal, tagged(true)));
    drop(root);
    let unrecorded = source.start_activity_with(
        "unrecorded",
        ActivityKind::Server,
        ActivityStartOptions {
            parent: ActivityParent::Id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
            ..Default::default()
        },
    );
    drop(source.start_activity("under unrecorded", ActivityKind::Internal));
    drop(unrecorded);
}

#[test]
fn declared_decisions_are_what_asking_would_answer_and_skip_the_asking() {
    static ASKED: ActivitySource = ActivitySource::new("model.decisions.asked");
    static DECLARED: ActivitySource = ActivitySource::new("model.decisions.declared");
    for root in [true, false] {
        let sampler = || {
            if root {
                ParentBasedSampler::new(AlwaysOnSampler)
            } else {
                ParentBasedSampler::new(AlwaysOffSampler)
            }
        };
        let asked = Delegating::new("model.decisions.asked", sampler(), false);
        let declared = Delegating::new("model.decisions.declared", sampler(), true);
        let regs = (
            ActivitySource::add_activity_listener(asked.clone()),
            ActivitySource::add_activity_listener(declared.clone()),
        );
        family(&ASKED);
        family(&DECLARED);
        let seen = |l: &Delegating| l.stopped.lock().unwrap().clone();
        assert_eq!(seen(&declared), seen(&asked), "root sampler always on: {root}");
        assert!(!seen(&asked).is_empty());
        assert_eq!(asked.asked(), 6, "every start asks a listener that does not declare");
        // Only the activity with a remote parent was asked about: roots and local children
        // were answered from the declarations.
        assert_eq!(declared.asked(), 1);
        drop(regs);
    }
}

#[test]
fn a_listener_that_must_be_asked_is_asked_beside_one_that_declares() {
    static S: ActivitySource = ActivitySource::new("model.decisions.mixed");
    let declared = Delegating::new("model.decisions.mixed", ParentBasedSampler::new(AlwaysOffSampler), true);
    let asking = Recorder::new("model.decisions.mixed", AllDataAndRecorded);
    let _regs = (
        ActivitySource::add_activity_listener(declared.clone()),
        ActivitySource::add_activity_listener(asking.clone()),
    );
    let root = S
        .start_activity("root", ActivityKind::Server)
        .expect("the recorder records");
    let child = S.start_activity("child", ActivityKind::Internal).unwrap();
    assert!(child.recorded() && root.recorded());
    drop((child, root));
    assert_eq!(asking.sampled.lock().unwrap().len(), 2);
    assert_eq!(declared.asked(), 2, "the set is asked as a whole");
}

#[test]
fn declared_decisions_still_honour_suppression_and_started_callbacks() {
    static S: ActivitySource = ActivitySource::new("model.decisions.started");
    let listener = Arc::new(Delegating {
        wants_started: true,
        ..Arc::into_inner(Delegating::new(
            "model.decisions.started",
            ParentBasedSampler::new(AlwaysOnSampler),
            true,
        ))
        .unwrap()
    });
    let _reg = ActivitySource::add_activity_listener(listener.clone());
    let root = S.start_activity("root", ActivityKind::Server).unwrap();
    drop(S.start_activity("child", ActivityKind::Internal).unwrap());
    {
        let _quiet = suppress_instrumentation();
        assert!(S.start_activity("suppressed child", ActivityKind::Internal).is_none());
    }
    drop(root);
    assert_eq!(*listener.started.lock().unwrap(), ["root", "child"]);

    // Declared and not interested in starts: suppression holds on that path too.
    static QUIET: ActivitySource = ActivitySource::new("model.decisions.quiet");
    let declared = Delegating::new("model.decisions.quiet", ParentBasedSampler::new(AlwaysOnSampler), true);
    let _reg = ActivitySource::add_activity_listener(declared.clone());
    let root = QUIET.start_activity("root", ActivityKind::Server).unwrap();
    {
        let _quiet = suppress_instrumentation();
        assert!(QUIET
            .start_activity("suppressed child", ActivityKind::Internal)
            .is_none());
        let detached = ActivityStartOptions {
            detached: true,
            ..Default::default()
        };
        assert!(QUIET
            .start_activity_with("suppressed detached child", ActivityKind::Internal, detached)
            .is_none());
        drop(Activity::set_current(None));
        assert!(QUIET.start_activity("suppressed root", ActivityKind::Server).is_none());
        Activity::set_current(Some(&root));
    }
    assert!(QUIET.start_activity("child", ActivityKind::Internal).is_some());
    drop(root);
    assert_eq!(declared.asked(), 0);
}

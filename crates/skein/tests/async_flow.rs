//! The current activity across `.await`s, spawned tasks and threads.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::Recorder;
use skein::*;

static S: ActivitySource = ActivitySource::new("async.flow");

/// Returns `Pending` once, so the executor interleaves tasks.
struct YieldOnce(bool);
impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_now() -> YieldOnce {
    YieldOnce(false)
}

fn current_name() -> Option<String> {
    Activity::current().map(|a| a.operation_name().to_owned())
}

#[test]
fn held_activities_do_not_leak_between_interleaved_tasks() {
    let _reg = ActivitySource::add_activity_listener(Recorder::new("async.flow", ActivitySamplingResult::AllData));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let task = |name: &'static str| {
            async move {
                let mut seen = Vec::new();
                let _a = S.start_activity(name, ActivityKind::Internal).unwrap();
                for _ in 0..5 {
                    yield_now().await;
                    seen.push(current_name());
                    let inner = S
                        .start_activity(format!("{name}.inner"), ActivityKind::Internal)
                        .unwrap();
                    yield_now().await;
                    seen.push(current_name());
                    drop(inner);
                }
                seen
            }
            .with_current()
        };
        let (a, b, c) = tokio::join!(
            tokio::spawn(task("a")),
            tokio::spawn(task("b")),
            tokio::spawn(
                async {
                    yield_now().await;
                    current_name()
                }
                .with_current()
            )
        );
        let a = a.unwrap();
        assert!(
            a.chunks(2)
                .all(|p| p[0].as_deref() == Some("a") && p[1].as_deref() == Some("a.inner")),
            "{a:?}"
        );
        let b = b.unwrap();
        assert!(
            b.chunks(2)
                .all(|p| p[0].as_deref() == Some("b") && p[1].as_deref() == Some("b.inner")),
            "{b:?}"
        );
        assert_eq!(c.unwrap(), None);
    });
    assert_eq!(current_name(), None, "nothing leaked onto the thread");
}

#[test]
fn spawned_tasks_on_a_multi_thread_runtime_keep_their_parent() {
    static M: ActivitySource = ActivitySource::new("async.multi");
    let rec = Recorder::new("async.multi", ActivitySamplingResult::AllDataAndRecorded);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(
        async {
            let parent = M.start_activity("request", ActivityKind::Server).unwrap();
            let mut handles = Vec::new();
            for i in 0..20 {
                handles.push(tokio::spawn(
                    async move {
                        let child = M.start_activity(format!("work{i}"), ActivityKind::Internal).unwrap();
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        assert!(Activity::current().unwrap().ptr_eq(&child));
                        (child.parent_span_id(), child.trace_id())
                    }
                    .with_current(),
                ));
            }
            for h in handles {
                let (parent_span, trace) = h.await.unwrap();
                assert_eq!(parent_span, parent.span_id());
                assert_eq!(trace, parent.trace_id());
            }
        }
        .with_current(),
    );
    assert_eq!(rec.stopped.lock().unwrap().len(), 21);
}

#[test]
fn in_activity_owns_and_stops_without_touching_the_callers_context() {
    static O: ActivitySource = ActivitySource::new("async.owned");
    let rec = Recorder::new("async.owned", ActivitySamplingResult::AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(
        async {
            let outer = O.start_activity("outer", ActivityKind::Internal).unwrap();
            let op = O.start_activity("op", ActivityKind::Client);
            // `start_activity` made it current here; `in_activity` moves it into the future.
            let fut = async {
                yield_now().await;
                let inner = O.start_activity("inner", ActivityKind::Internal).unwrap();
                assert_eq!(inner.parent().unwrap().operation_name(), "op");
                current_name()
            }
            .in_activity(op);
            assert_eq!(current_name().as_deref(), Some("outer"));
            assert_eq!(fut.await.as_deref(), Some("inner"));
            assert_eq!(current_name().as_deref(), Some("outer"));
            assert_eq!(rec.stopped_names(), ["inner", "op"]);
            drop(outer);
        }
        .with_current(),
    );
}

#[test]
fn a_cancelled_future_stops_its_activities_inside_its_own_context() {
    static C: ActivitySource = ActivitySource::new("async.cancel");
    let rec = Recorder::new("async.cancel", ActivitySamplingResult::AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let fut = async {
            let _held = C.start_activity("held", ActivityKind::Internal).unwrap();
            std::future::pending::<()>().await;
        }
        .with_current();
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(5), fut).await;
        assert!(timed_out.is_err());
        assert_eq!(rec.stopped_names(), ["held"]);
        assert_eq!(
            current_name(),
            None,
            "the dropped future's stop did not touch this context"
        );
    });
}

#[test]
fn threads_get_the_current_activity_through_with_current() {
    static T: ActivitySource = ActivitySource::new("async.thread");
    let rec = Recorder::new("async.thread", ActivitySamplingResult::AllData);
    let _reg = ActivitySource::add_activity_listener(rec.clone());
    let parent = T.start_activity("main", ActivityKind::Internal).unwrap();
    let handle = std::thread::spawn(skein::with_current(|| {
        let child = T.start_activity("worker", ActivityKind::Internal).unwrap();
        (
            child.parent_span_id(),
            Activity::current().unwrap().operation_name().to_owned(),
        )
    }));
    let (parent_span, name) = handle.join().unwrap();
    assert_eq!(parent_span, parent.span_id());
    assert_eq!(name, "worker");
    // A plain spawn does not inherit: the thread starts with no current activity.
    let plain = std::thread::spawn(|| Activity::current().is_none()).join().unwrap();
    assert!(plain);
    // An activity handed to a thread can be entered there.
    let p2 = parent.clone();
    let entered = std::thread::spawn(move || {
        let _guard = p2.enter();
        Activity::current().unwrap().ptr_eq(&p2)
    });
    assert!(entered.join().unwrap());
}

#[test]
fn a_guard_restores_what_was_current() {
    let a = Activity::new("a").start();
    {
        let _none = CurrentGuard::new(None);
        assert!(Activity::current().is_none());
    }
    assert!(Activity::current().unwrap().ptr_eq(&a));
}

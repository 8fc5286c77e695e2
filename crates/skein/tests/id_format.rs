//! The id format selection order and the trace-id generator. One test, because both are
//! process-wide.

use skein::*;

const W3C_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn started(setup: impl FnOnce(&Activity)) -> Activity {
    let a = Activity::new("op");
    setup(&a);
    a.start()
}

#[test]
fn format_selection_table() {
    use ActivityIdFormat::*;
    assert_eq!(Activity::default_id_format(), W3C);

    // No parent: the default.
    let a = started(|_| {});
    assert_eq!(a.id_format(), W3C);
    assert!(a.id().unwrap().starts_with("00-"));
    assert!(
        a.trace_flags().is_random(),
        "our random trace ids carry the level-2 flag"
    );
    drop(a);

    // Remote W3C parent id: W3C. Remote non-W3C id: hierarchical.
    assert_eq!(
        started(|a| {
            a.set_parent_id(W3C_PARENT);
        })
        .id_format(),
        W3C
    );
    assert_eq!(
        started(|a| {
            a.set_parent_id("|req.1.");
        })
        .id_format(),
        Hierarchical
    );
    // A W3C-shaped but invalid id (all-zero trace id) is not a usable parent and is treated
    // as a hierarchical id, as in .NET.
    let zero = "00-00000000000000000000000000000000-b7ad6b7169203331-01";
    assert_eq!(
        started(|a| {
            a.set_parent_id(zero);
        })
        .id_format(),
        W3C
    );

    // In-process parent: its format.
    {
        let parent = started(|a| {
            a.set_id_format(Hierarchical);
        });
        let child = started(|_| {});
        assert_eq!(child.id_format(), Hierarchical);
        assert_eq!(child.id().unwrap(), format!("{}1.", parent.id().unwrap()));
    }

    // Explicit per-activity format beats everything.
    {
        let _parent = started(|a| {
            a.set_id_format(Hierarchical);
        });
        let child = started(|a| {
            a.set_id_format(W3C);
        });
        assert_eq!(child.id_format(), W3C);
        assert_eq!(child.trace_id(), _parent.trace_id(), "still one trace for export");
    }

    // Default changed: new roots use it; children of W3C parents still follow the parent.
    Activity::set_default_id_format(Hierarchical);
    {
        let root = started(|_| {});
        assert_eq!(root.id_format(), Hierarchical);
        let remote_w3c_child = started(|a| {
            a.set_parent_id(W3C_PARENT);
        });
        assert_eq!(remote_w3c_child.id_format(), W3C);
    }
    // Forced: every activity takes the default, whatever its parent.
    Activity::set_force_default_id_format(true);
    {
        let forced = started(|a| {
            a.set_parent_id(W3C_PARENT);
        });
        assert_eq!(forced.id_format(), Hierarchical);
        let id = forced.id().unwrap();
        assert!(id.starts_with(&format!("|{W3C_PARENT}.")) && id.ends_with('_'), "{id}");
        // ... but an explicit choice still wins.
        assert_eq!(
            started(|a| {
                a.set_id_format(W3C);
            })
            .id_format(),
            W3C
        );
    }
    Activity::set_force_default_id_format(false);
    Activity::set_default_id_format(W3C);
    // Unknown is not a valid default.
    Activity::set_default_id_format(Unknown);
    assert_eq!(Activity::default_id_format(), W3C);

    // The trace-id generator is process-wide too, so it is checked here, in sequence.
    custom_trace_id_generator();
}

fn custom_trace_id_generator() {
    let fixed = TraceId::from_u128(0x1234);
    set_trace_id_generator(Some(Box::new(move || fixed)));
    let a = Activity::new("generated").start();
    assert_eq!(a.trace_id(), fixed);
    assert!(!a.trace_flags().is_random(), "custom ids are not claimed random");
    drop(a);
    set_trace_id_generator(None);
    assert_ne!(Activity::new("x").start().trace_id(), fixed);
}

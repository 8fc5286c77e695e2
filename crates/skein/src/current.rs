//! The current activity: a per-thread slot that futures carry with them across `.await`s.
//!
//! Synchronous code needs nothing: starting an activity makes it current, stopping it restores
//! the one before. Async code gets the same behaviour as .NET's `AsyncLocal` from
//! [`FutureExt`]: a wrapped future keeps its *own* current activity, installed on the thread
//! for each poll and taken back afterwards, so an activity held across an `.await` never
//! leaks into another task polled on the same thread.
//!
//! ```
//! use skein::{Activity, FutureExt};
//!
//! # async fn work() {}
//! # async fn example() {
//! let parent = Activity::new("request").start();
//! // Spawned tasks and threads get the current activity by capturing it:
//! let task = async { Activity::current().map(|a| a.operation_name().to_owned()) }.with_current();
//! let thread = std::thread::spawn(skein::with_current(|| Activity::current().is_some()));
//! assert!(thread.join().unwrap());
//! assert_eq!(task.await.as_deref(), Some("request"));
//! # }
//! ```

use std::cell::Cell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::activity::Activity;

thread_local! {
    static CURRENT: Cell<Option<Activity>> = const { Cell::new(None) };
}

/// Replaces this thread's current activity, returning the old one. During thread teardown
/// (after the slot is gone) it does nothing.
#[inline]
pub(crate) fn replace(value: Option<Activity>) -> Option<Activity> {
    CURRENT.try_with(|c| c.replace(value)).unwrap_or(None)
}

#[inline]
pub(crate) fn take() -> Option<Activity> {
    CURRENT
        .try_with(|slot| {
            skip_stopped_elsewhere(slot);
            slot.take()
        })
        .unwrap_or(None)
}

/// If the slot's activity was stopped on another thread, makes its saved previous activity
/// current instead (repeatedly), so that a stopped activity is never handed out as the
/// current one or as a parent.
#[inline]
fn skip_stopped_elsewhere(slot: &Cell<Option<Activity>>) {
    // SAFETY: a read of the slot that ends before anything can replace it.
    let stale = unsafe { &*slot.as_ptr() }
        .as_ref()
        .is_some_and(Activity::stopped_elsewhere);
    if stale {
        restore_until_running(slot);
    }
}

#[cold]
fn restore_until_running(slot: &Cell<Option<Activity>>) {
    while let Some(stopped) = slot.take() {
        if !stopped.stopped_elsewhere() {
            slot.set(Some(stopped));
            return;
        }
        slot.set(stopped.take_saved_previous());
        // Released with no borrow of the slot held: freeing may run user `Drop`s.
        drop(stopped);
    }
}

#[inline]
pub(crate) fn set(value: Option<Activity>) {
    drop(replace(value));
}

/// Runs `f` with a borrow of the current activity (no reference count change). `f` must not
/// change the current activity; callers pass plain getters.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(Option<&Activity>) -> R) -> R {
    let mut f = Some(f);
    CURRENT
        .try_with(|slot| {
            skip_stopped_elsewhere(slot);
            // SAFETY: the slot is only replaced through `replace`, which `f` does not call, so
            // the borrow stays valid while `f` runs.
            let current = unsafe { &*slot.as_ptr() };
            f.take().map(|f| f(current.as_ref()))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| f.take().map_or_else(|| unreachable!("called once"), |f| f(None)))
}

pub(crate) fn get() -> Option<Activity> {
    with(|c| c.cloned())
}

/// Makes an activity (or none) current until dropped, then restores what was current before.
#[must_use = "the activity is current only while the guard lives"]
pub struct CurrentGuard {
    previous: Option<Activity>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl CurrentGuard {
    /// Makes `activity` current (the guard never stops it). A stopped or never-started
    /// activity is not made current (as in .NET); the guard then restores what is current now.
    pub fn new(activity: Option<&Activity>) -> Self {
        let previous = match activity {
            Some(a) if !a.is_running() => get(),
            _ => replace(activity.cloned()),
        };
        CurrentGuard {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        set(self.previous.take());
    }
}

/// Wraps a closure so it runs with the activity that is current *now* (for
/// `std::thread::spawn`, thread pools and callbacks).
///
/// ```
/// use skein::Activity;
/// let parent = Activity::new("parent").start();
/// let handle = std::thread::spawn(skein::with_current(move || {
///     Activity::current().unwrap().operation_name().to_owned()
/// }));
/// assert_eq!(handle.join().unwrap(), "parent");
/// ```
pub fn with_current<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let captured = get();
    move || {
        let _guard = CurrentGuard::new(captured.as_ref());
        f()
    }
}

/// Carries the current activity into futures.
pub trait FutureExt: Future + Sized {
    /// Runs the future with the activity that is current now as its current activity (for
    /// `tokio::spawn(fut.with_current())` and other executors). Activities the future starts
    /// and holds across `.await`s stay inside it.
    fn with_current(self) -> WithActivity<Self> {
        WithActivity::new(self, get(), None)
    }

    /// Runs the future with `activity` current and stops it when the future completes or is
    /// dropped. If `activity` was just started here (and so became current here), it is
    /// detached from this context first: the caller's current activity is unchanged.
    ///
    /// ```
    /// use skein::{Activity, FutureExt};
    /// # async fn example() {
    /// let op = Activity::new("op").start();
    /// let handle = op.clone();
    /// async { assert_eq!(Activity::current().unwrap().operation_name(), "op") }
    ///     .in_activity(Some(op))
    ///     .await;
    /// assert!(handle.is_stopped());
    /// # }
    /// ```
    fn in_activity(self, activity: Option<Activity>) -> WithActivity<Self> {
        if let Some(a) = &activity {
            if with(|current| current == Some(a)) {
                // Undo "start makes it current" here: from now on it is current in the future.
                set(a.saved_previous());
            }
        }
        let slot = activity.clone(); // references; `activity` keeps ownership
        WithActivity::new(self, slot, activity)
    }

    /// Runs the future with `activity` current without taking ownership (it is not stopped).
    fn with_activity(self, activity: Option<&Activity>) -> WithActivity<Self> {
        WithActivity::new(self, activity.cloned(), None)
    }
}

impl<F: Future> FutureExt for F {}

/// A future that carries its own current activity; see [`FutureExt`].
pub struct WithActivity<F> {
    inner: ManuallyDrop<F>,
    /// The future's current activity while it is not being polled.
    slot: Option<Activity>,
    /// An activity this future owns and stops when done.
    owned: Option<Activity>,
}

impl<F> WithActivity<F> {
    fn new(inner: F, slot: Option<Activity>, owned: Option<Activity>) -> Self {
        WithActivity {
            inner: ManuallyDrop::new(inner),
            slot,
            owned,
        }
    }
}

/// Installs a task's slot on the thread and puts it back (with whatever the task changed)
/// when dropped, also when the poll panics.
struct Entered<'a> {
    slot: &'a mut Option<Activity>,
    outer: Option<Activity>,
}

impl<'a> Entered<'a> {
    fn new(slot: &'a mut Option<Activity>) -> Self {
        let outer = replace(slot.take());
        Entered { slot, outer }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        *self.slot = replace(self.outer.take());
    }
}

impl<F: Future> Future for WithActivity<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is never moved out of the pinned struct (only dropped in place in
        // `Drop`), so projecting the pin to it is sound; the other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let _entered = Entered::new(&mut this.slot);
        let inner = unsafe { Pin::new_unchecked(&mut *this.inner) };
        let result = inner.poll(cx);
        if result.is_ready() {
            drop(this.owned.take());
        }
        result
    }
}

impl<F> Drop for WithActivity<F> {
    fn drop(&mut self) {
        // Drop the future inside its own context, so activities it owned stop and restore
        // its context rather than the thread's.
        let _entered = Entered::new(&mut self.slot);
        // SAFETY: dropped exactly once, here; never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
        drop(self.owned.take());
    }
}

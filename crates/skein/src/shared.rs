//! The reference-counted home of an activity, with per-thread recycling of its memory.
//!
//! This is `Arc` specialised for one type: a stopped activity's memory goes back to a small
//! per-thread pool and the next activity started on that thread reuses it, still warm in the
//! cache and without a trip through the allocator (whose cross-thread frees are a measurable
//! share of a recorded activity's cost).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::UnsafeCell;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use crate::activity::Inner;

struct Block {
    count: AtomicUsize,
    value: Inner,
}

const LAYOUT: Layout = Layout::new::<Block>();
/// Blocks kept per thread: enough to absorb a batch of activities an exporter hands back.
const POOL_CAPACITY: usize = 256;

struct Pool(UnsafeCell<Vec<NonNull<Block>>>);

impl Drop for Pool {
    fn drop(&mut self) {
        for block in self.0.get_mut().drain(..) {
            // SAFETY: pooled blocks were allocated with LAYOUT and hold no value.
            unsafe { dealloc(block.as_ptr().cast(), LAYOUT) };
        }
    }
}

thread_local! {
    static POOL: Pool = const { Pool(UnsafeCell::new(Vec::new())) };
}

fn take_block() -> NonNull<Block> {
    let pooled = POOL
        .try_with(|pool| {
            // SAFETY: the pool is only touched here and in `return_block`, never re-entrantly.
            unsafe { (*pool.0.get()).pop() }
        })
        .ok()
        .flatten();
    pooled.unwrap_or_else(|| {
        // SAFETY: LAYOUT has a non-zero size.
        let raw = unsafe { alloc(LAYOUT) };
        NonNull::new(raw.cast()).unwrap_or_else(|| handle_alloc_error(LAYOUT))
    })
}

fn return_block(block: NonNull<Block>) {
    let kept = POOL
        .try_with(|pool| {
            // SAFETY: see `take_block`.
            let pool = unsafe { &mut *pool.0.get() };
            if pool.len() < POOL_CAPACITY {
                if pool.capacity() == 0 {
                    pool.reserve_exact(POOL_CAPACITY);
                }
                pool.push(block);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: the block was allocated with LAYOUT and its value has been dropped.
        unsafe { dealloc(block.as_ptr().cast(), LAYOUT) };
    }
}

/// A block whose activity is being written.
pub(crate) struct Uninit {
    block: NonNull<Block>,
}

impl Uninit {
    /// Where the activity's fields go.
    #[inline]
    pub(crate) fn as_mut_ptr(&self) -> *mut Inner {
        // SAFETY: in bounds of the block.
        unsafe { std::ptr::addr_of_mut!((*self.block.as_ptr()).value) }
    }

    /// The finished activity, with one reference.
    ///
    /// # Safety
    /// Every field of the `Inner` at `as_mut_ptr` must have been written.
    #[inline]
    pub(crate) unsafe fn assume_init(self) -> Shared {
        // SAFETY: the block is valid and unshared.
        unsafe { std::ptr::addr_of_mut!((*self.block.as_ptr()).count).write(AtomicUsize::new(1)) };
        Shared { block: self.block }
    }

    /// The finished activity with two references, counted in the initial write instead of
    /// with an atomic increment (which would also wait for every store of the construction).
    ///
    /// # Safety
    /// As for [`assume_init`](Self::assume_init).
    #[inline]
    pub(crate) unsafe fn assume_init_twice(self) -> (Shared, Shared) {
        // SAFETY: the block is valid and unshared.
        unsafe { std::ptr::addr_of_mut!((*self.block.as_ptr()).count).write(AtomicUsize::new(2)) };
        (Shared { block: self.block }, Shared { block: self.block })
    }
}

/// A shared, reference-counted activity (`Arc<Inner>` with pooled memory).
pub(crate) struct Shared {
    block: NonNull<Block>,
}

// SAFETY: like `Arc<Inner>`: the count is atomic and `Inner` is `Send + Sync`.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Memory for a new activity: write every field of the returned `Inner`, then call
    /// [`Uninit::assume_init`].
    #[inline]
    pub(crate) fn new_uninit() -> Uninit {
        Uninit { block: take_block() }
    }

    /// True if both point to the same activity.
    pub(crate) fn ptr_eq(a: &Shared, b: &Shared) -> bool {
        a.block == b.block
    }
}

impl Deref for Shared {
    type Target = Inner;
    #[inline]
    fn deref(&self) -> &Inner {
        // SAFETY: the block stays allocated and initialised while a `Shared` exists.
        unsafe { &(*self.block.as_ptr()).value }
    }
}

impl Clone for Shared {
    #[inline]
    fn clone(&self) -> Shared {
        // SAFETY: as in `Deref`.
        let old = unsafe { (*self.block.as_ptr()).count.fetch_add(1, Ordering::Relaxed) };
        // As `Arc` does: a count this large means clones are being leaked; stop before wrap.
        if old > isize::MAX as usize {
            std::process::abort();
        }
        Shared { block: self.block }
    }
}

impl Drop for Shared {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: as in `Deref`; the release/acquire pair orders every use of the value
        // before it is dropped, as in `Arc`.
        unsafe {
            if (*self.block.as_ptr()).count.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            fence(Ordering::Acquire);
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*self.block.as_ptr()).value));
        }
        return_block(self.block);
    }
}

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

#[repr(C)]
struct Block {
    count: AtomicUsize,
    value: Inner,
}

const LAYOUT: Layout = Layout::new::<Block>();
/// Blocks kept per thread.
const POOL_CAPACITY: usize = 256;
/// Blocks moved between a thread and the shared spare list at a time.
const TRANSFER: usize = 128;
/// Blocks kept on the shared spare list.
const SPARE_CAPACITY: usize = 4096;

/// A free block (no value inside), movable between threads.
struct FreeBlock(NonNull<Block>);

// SAFETY: a free block is plain memory owned by whoever holds it.
unsafe impl Send for FreeBlock {}

fn free(block: FreeBlock) {
    // SAFETY: the block was allocated with LAYOUT and holds no value.
    unsafe { dealloc(block.0.as_ptr().cast(), LAYOUT) };
}

/// Blocks freed on one thread and wanted on another: activities are typically started on
/// application threads and released on the export thread. Moving them here in bulk keeps that
/// traffic out of the allocator, whose cross-thread frees contend.
static SPARE: std::sync::Mutex<Vec<FreeBlock>> = std::sync::Mutex::new(Vec::new());

fn spare() -> std::sync::MutexGuard<'static, Vec<FreeBlock>> {
    SPARE.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's free blocks, the most recently freed on top. None of them is warm in this
/// core's first-level cache: a block comes back when its activity is released, usually in a
/// batch long after it ran (and only its first line is read then), or from the shared spare
/// list, freed on another core. The first write to each line of a block would wait for it,
/// so taking one asks for the next one's lines (`prefetch_for_write`): that wait overlaps the
/// current activity's work instead of stalling the next start (measured, root + 10 children
/// through the pipeline: ~3% faster than prefetching only blocks from the spare list).
struct PoolBlocks {
    blocks: Vec<FreeBlock>,
}

struct Pool(UnsafeCell<PoolBlocks>);

impl Drop for Pool {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.0.get_mut().blocks);
        let mut spare = spare();
        for block in blocks {
            if spare.len() < SPARE_CAPACITY {
                spare.push(block);
            } else {
                free(block);
            }
        }
    }
}

thread_local! {
    static POOL: Pool = const {
        Pool(UnsafeCell::new(PoolBlocks {
            blocks: Vec::new(),
        }))
    };
}

fn take_block() -> NonNull<Block> {
    let pooled = POOL
        .try_with(|pool| {
            // SAFETY: the pool is only touched here and in `return_block`, never re-entrantly.
            let pool = unsafe { &mut *pool.0.get() };
            if pool.blocks.is_empty() {
                let mut spare = spare();
                let from = spare.len().saturating_sub(TRANSFER);
                pool.blocks.extend(spare.drain(from..));
            }
            let block = pool.blocks.pop();
            if let Some(next) = pool.blocks.last() {
                prefetch_for_write(next.0);
            }
            block
        })
        .ok()
        .flatten();
    match pooled {
        Some(block) => block.0,
        None => {
            // SAFETY: LAYOUT has a non-zero size.
            let raw = unsafe { alloc(LAYOUT) };
            NonNull::new(raw.cast()).unwrap_or_else(|| handle_alloc_error(LAYOUT))
        }
    }
}

/// Asks for every cache line of `block` in a writable state (x86 `PREFETCHW`, where the CPU
/// has it; elsewhere, and under Miri, which runs no inline assembly, nothing).
#[inline]
fn prefetch_for_write(block: NonNull<Block>) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if has_prefetchw() {
        let base = block.as_ptr().cast::<u8>();
        for offset in (0..LAYOUT.size()).step_by(64) {
            // SAFETY: the address is inside the block; a prefetch reads and writes nothing
            // and cannot fault.
            unsafe {
                std::arch::asm!("prefetchw [{0}]", in(reg) base.add(offset), options(nostack, preserves_flags, readonly));
            }
        }
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    let _ = block;
}

/// Asks for the cache lines that releasing the activity in `block` reads when it holds no
/// heap memory (the usual case): its count, marks and parent reference, at the front of the
/// block (`Inner::PLAIN_RELEASE_READS`), at most two lines as blocks are not line-aligned.
/// Releasing a batch then overlaps the next one's cache misses with this one's work. x86
/// only, and not under Miri (nothing elsewhere).
#[inline]
fn prefetch_for_release(block: NonNull<Block>) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        const LAST: usize = std::mem::offset_of!(Block, value) + Inner::PLAIN_RELEASE_READS - 1;
        let base = block.as_ptr().cast::<i8>();
        for offset in [0, LAST] {
            // SAFETY: the address is inside the block; a prefetch reads nothing and cannot
            // fault. SSE is part of x86_64.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(base.add(offset));
            }
        }
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    let _ = block;
}

/// CPUID leaf 0x8000_0001, ECX bit 8 (`PREFETCHW`), read once.
#[cfg(all(target_arch = "x86_64", not(miri)))]
fn has_prefetchw() -> bool {
    use std::sync::atomic::AtomicU8;
    static KNOWN: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
    match KNOWN.load(Ordering::Relaxed) {
        0 => {
            use std::arch::x86_64::__cpuid;
            // The extended leaf is asked for only if the CPU has it.
            let yes = __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0;
            KNOWN.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        known => known == 2,
    }
}

fn return_block(block: NonNull<Block>) {
    let mut block = Some(FreeBlock(block));
    let _ = POOL.try_with(|pool| {
        // SAFETY: see `take_block`.
        let pool = unsafe { &mut *pool.0.get() };
        if pool.blocks.len() >= POOL_CAPACITY {
            // Hand a share to the other threads.
            let mut spare = spare();
            let keep = pool.blocks.len() - TRANSFER;
            for extra in pool.blocks.drain(keep..) {
                if spare.len() < SPARE_CAPACITY {
                    spare.push(extra);
                } else {
                    free(extra);
                }
            }
        }
        if pool.blocks.capacity() == 0 {
            pool.blocks.reserve_exact(POOL_CAPACITY);
        }
        pool.blocks.extend(block.take());
    });
    // Still here if the thread is exiting and its pool is gone.
    if let Some(block) = block {
        free(block);
    }
}

/// Lets go of one reference to the activity in `block`; true if it was the last one (the
/// caller then has the activity to itself and frees it). The last reference needs no
/// read-modify-write: nobody else can change the count (the acquire load orders the other
/// references' uses before the drop); otherwise release/acquire as in `Arc`.
///
/// # Safety
/// `block` must hold an initialised activity, and the caller one reference to it, which is
/// gone afterwards.
#[inline]
unsafe fn was_last_reference(block: NonNull<Block>) -> bool {
    // SAFETY: guaranteed by the caller.
    let count = unsafe { &(*block.as_ptr()).count };
    if count.load(Ordering::Acquire) != 1 {
        if count.fetch_sub(1, Ordering::Release) != 1 {
            return false;
        }
        fence(Ordering::Acquire);
    }
    true
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

    /// The number of references. Acquire ordering: when the caller holds all of them, every
    /// use made through references dropped meanwhile happened before this returns.
    #[inline]
    pub(crate) fn count(this: &Shared) -> usize {
        // SAFETY: as in `Deref`.
        unsafe { (*this.block.as_ptr()).count.load(Ordering::Acquire) }
    }

    /// Releases `other`, a second reference to the same activity as `keep`. When these two
    /// are the only references, the count is set to one with a plain store: the caller holds
    /// both exclusively, so no other thread can be changing it.
    #[inline]
    pub(crate) fn merge(keep: &mut Shared, other: Shared) {
        debug_assert!(Shared::ptr_eq(keep, &other));
        if Shared::count(keep) == 2 {
            // SAFETY: as in `Deref`.
            unsafe { (*keep.block.as_ptr()).count.store(1, Ordering::Relaxed) };
            std::mem::forget(other);
        } else {
            drop(other);
        }
    }
}

impl Shared {
    /// Releases `more` references to the activity `this` refers to, beyond `this` itself
    /// (which keeps the count above zero): references that were forgotten to be released
    /// here, together.
    #[inline]
    pub(crate) fn release_more(this: &Shared, more: usize) {
        if more > 0 {
            // SAFETY: as in `Deref`. Release, as each dropped reference's would be.
            unsafe { (*this.block.as_ptr()).count.fetch_sub(more, Ordering::Release) };
        }
    }

    /// Starts bringing in what releasing this activity reads (see `prefetch_for_release`).
    #[inline]
    pub(crate) fn prefetch_release(this: &Shared) {
        prefetch_for_release(this.block);
    }

    /// Drops this reference; when it was the last one, the activity's parent reference is
    /// returned instead of released (for [`crate::Activity::drop_all`]).
    pub(crate) fn drop_keeping_parent(self) -> Option<crate::Activity> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: as in `Drop`: the count decides who releases; the last reference's holder
        // has the activity to itself.
        unsafe {
            if !was_last_reference(this.block) {
                return None;
            }
            let value = std::ptr::addr_of_mut!((*this.block.as_ptr()).value);
            let parent = Inner::take_parent(value);
            Inner::release(value);
            return_block(this.block);
            parent
        }
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
            if !was_last_reference(self.block) {
                return;
            }
            Inner::release(std::ptr::addr_of_mut!((*self.block.as_ptr()).value));
        }
        return_block(self.block);
    }
}

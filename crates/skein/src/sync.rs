//! Two small synchronisation cells for the activity hot path, where `std`'s versions cost
//! more than the work they guard: a lock whose uncontended unlock is a plain release store,
//! and a set-once cell that can be created already set without going through `Once`.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// A lock for data held for a few instructions at a time (an activity's tags and events).
/// Contention is rare (an exporter or enrichment hook reading while the owner writes), so
/// waiters spin briefly and then yield the CPU instead of parking.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `locked` (acquire on lock, release on unlock).
unsafe impl<T: Send> Send for SpinLock<T> {}
unsafe impl<T: Send> Sync for SpinLock<T> {}

pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    #[cfg(test)]
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Initialises an unlocked lock at `this` and returns where its value goes; the caller
    /// must write the value before the lock is used.
    ///
    /// # Safety
    /// `this` must be valid for writes and not yet initialised.
    pub(crate) unsafe fn write_unlocked(this: *mut Self) -> *mut T {
        // SAFETY: guaranteed by the caller; `UnsafeCell::raw_get` needs no reference.
        unsafe {
            std::ptr::addr_of_mut!((*this).locked).write(AtomicBool::new(false));
            UnsafeCell::raw_get(std::ptr::addr_of!((*this).value))
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard { lock: self }
    }

    /// Takes the lock with plain stores instead of an atomic read-modify-write.
    ///
    /// # Safety
    /// No other thread may be able to reach this lock now: the caller holds every reference
    /// to its owner on this thread. (Once locked, the lock works as usual: a reference handed
    /// to another thread meanwhile finds it held and waits for the release store.) Nested use
    /// on this thread finds it held and waits, as with [`lock`](Self::lock).
    #[inline]
    pub(crate) unsafe fn lock_unshared(&self) -> SpinGuard<'_, T> {
        if self.locked.load(Ordering::Relaxed) {
            return self.lock();
        }
        self.locked.store(true, Ordering::Relaxed);
        SpinGuard { lock: self }
    }

    /// The value, through exclusive access (no locking needed).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 64 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// A value written at most once, readable without locking afterwards.
#[repr(C)] // the state first: see `VALUE_OFFSET`
pub(crate) struct SetOnce<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once before `READY` is published with release ordering and
// only read after observing `READY` with acquire ordering; it is never mutated afterwards.
unsafe impl<T: Send + Sync> Send for SetOnce<T> {}
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}

impl<T> SetOnce<T> {
    pub(crate) const fn empty() -> Self {
        SetOnce {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    #[cfg(test)]
    pub(crate) const fn with(value: T) -> Self {
        SetOnce {
            state: AtomicU8::new(READY),
            value: UnsafeCell::new(MaybeUninit::new(value)),
        }
    }

    /// Marks the cell at `this` set and returns where its value goes; the caller must write
    /// the value before the cell is read.
    ///
    /// # Safety
    /// `this` must be valid for writes and not yet initialised.
    /// Where the value starts, from the start of the cell.
    pub(crate) const VALUE_OFFSET: usize = std::mem::offset_of!(Self, value);

    pub(crate) unsafe fn write_set_with(this: *mut Self) -> *mut T {
        // SAFETY: guaranteed by the caller.
        unsafe {
            std::ptr::addr_of_mut!((*this).state).write(AtomicU8::new(READY));
            UnsafeCell::raw_get(std::ptr::addr_of!((*this).value)).cast()
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY means the value was fully written and is never written again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, if set, through exclusive access.
    pub(crate) fn get_mut(&mut self) -> Option<&mut T> {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means initialised; `&mut self` means no reader remains.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Stores `value` unless a value was stored (or is being stored) already.
    pub(crate) fn set(&self, value: T) -> bool {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: winning the EMPTY -> WRITING exchange gives exclusive write access, and
        // readers do not look until READY.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(READY, Ordering::Release);
        true
    }
}

impl<T> Drop for SetOnce<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means initialised; `&mut self` means no reader remains.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_serialises_writers() {
        // Miri interprets every spin: fewer rounds there.
        const ROUNDS: u64 = if cfg!(miri) { 200 } else { 100_000 };
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 4 * ROUNDS);
    }

    #[test]
    fn set_once() {
        let cell = SetOnce::empty();
        assert!(cell.get().is_none());
        assert!(cell.set(String::from("a")));
        assert!(!cell.set(String::from("b")));
        assert_eq!(cell.get().map(String::as_str), Some("a"));
        let ready = SetOnce::with(vec![1]);
        assert_eq!(ready.get(), Some(&vec![1]));
    }
}

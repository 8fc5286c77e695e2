//! A vector with room for `N` elements inline, for an activity's tags and events. Unlike
//! `SmallVec`, a new one is made by writing two words in place — the inline room is never
//! copied while empty, which matters on the activity start path.

use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::ptr::addr_of_mut;

/// Elements that can say, cheaply, that dropping them would free nothing: an activity's
/// tags and events usually hold only static strings and numbers, and skipping their drop code
/// makes freeing an activity markedly cheaper.
pub(crate) trait OwnsNothing {
    /// True if dropping `self` would free no memory and run no code.
    fn owns_nothing(&self) -> bool;
}

// The two words read on every use come first, the inline room last (see `Inner`'s layout).
#[repr(C)]
pub(crate) struct InlineVec<T: OwnsNothing, const N: usize> {
    /// Elements stored inline (`len <= N` and `spill` is empty).
    len: usize,
    /// Set once an element that owns something was stored inline, or the elements were lent
    /// out mutably (which could store one); never cleared. While it is false, the inline
    /// elements need no drop at all.
    may_own: bool,
    /// Once more than `N` elements were pushed, all of them live here.
    spill: Vec<T>,
    inline: [MaybeUninit<T>; N],
}

impl<T: OwnsNothing, const N: usize> InlineVec<T, N> {
    /// Initialises an empty vector at `this` without touching the inline room.
    ///
    /// # Safety
    /// `this` must be valid for writes and not yet initialised.
    pub(crate) unsafe fn write_empty(this: *mut Self) {
        // SAFETY: guaranteed by the caller; `inline` may stay uninitialised.
        unsafe {
            addr_of_mut!((*this).len).write(0);
            addr_of_mut!((*this).may_own).write(false);
            addr_of_mut!((*this).spill).write(Vec::new());
        }
    }

    /// True if the elements live in the heap (more than `N` were pushed at some point).
    fn spilled(&self) -> bool {
        self.spill.capacity() != 0
    }

    /// True if dropping this vector would free nothing (elements inline, none owning
    /// anything): one check instead of one per element.
    #[inline]
    pub(crate) fn owns_nothing(&self) -> bool {
        !self.may_own && !self.spilled()
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, value: T) {
        if !self.spilled() && self.len < N {
            self.may_own |= !value.owns_nothing();
            self.inline[self.len].write(value);
            self.len += 1;
        } else {
            self.push_slow(value);
        }
    }

    #[cold]
    fn push_slow(&mut self, value: T) {
        if self.spilled() {
            self.spill.push(value);
        } else {
            let mut spill = Vec::with_capacity(N * 2);
            for slot in &self.inline[..self.len] {
                // SAFETY: the first `len` slots are initialised; `len` is reset below, so
                // each value is moved out exactly once.
                spill.push(unsafe { slot.assume_init_read() });
            }
            self.len = 0;
            spill.push(value);
            self.spill = spill;
        }
    }

    pub(crate) fn remove(&mut self, index: usize) -> T {
        if self.spilled() {
            return self.spill.remove(index);
        }
        assert!(index < self.len, "index out of bounds");
        // SAFETY: `index < len`; the tail is shifted down over the moved-out slot.
        unsafe {
            let base = self.inline.as_mut_ptr();
            let value = base.add(index).read().assume_init();
            std::ptr::copy(base.add(index + 1), base.add(index), self.len - index - 1);
            self.len -= 1;
            value
        }
    }

    /// Initialises a vector holding `vec`'s elements at `this`, in place (a whole vector
    /// returned by value would be copied, inline room and all).
    ///
    /// # Safety
    /// `this` must be valid for writes and not yet initialised.
    pub(crate) unsafe fn write_from_vec(this: *mut Self, vec: Vec<T>) {
        // SAFETY: guaranteed by the caller; the first `len` inline slots are written before
        // `len` says so, and nothing reads the vector meanwhile.
        unsafe {
            if vec.len() > N {
                addr_of_mut!((*this).len).write(0);
                addr_of_mut!((*this).may_own).write(false);
                addr_of_mut!((*this).spill).write(vec);
                return;
            }
            // Moved in one copy; the vector keeps no elements, only its buffer to free.
            let mut vec = std::mem::ManuallyDrop::new(vec);
            let len = vec.len();
            let may_own = vec.iter().any(|value| !value.owns_nothing());
            std::ptr::copy_nonoverlapping(vec.as_ptr(), addr_of_mut!((*this).inline).cast::<T>(), len);
            vec.set_len(0);
            std::mem::ManuallyDrop::drop(&mut vec);
            addr_of_mut!((*this).len).write(len);
            addr_of_mut!((*this).may_own).write(may_own);
            addr_of_mut!((*this).spill).write(Vec::new());
        }
    }
}

impl<T: OwnsNothing, const N: usize> Deref for InlineVec<T, N> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        if self.spilled() {
            &self.spill
        } else {
            // SAFETY: the first `len` inline slots are initialised.
            unsafe { &*(std::ptr::slice_from_raw_parts(self.inline.as_ptr().cast::<T>(), self.len)) }
        }
    }
}

impl<T: OwnsNothing, const N: usize> DerefMut for InlineVec<T, N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        if self.spilled() {
            &mut self.spill
        } else {
            self.may_own = true;
            // SAFETY: as in `deref`, and `&mut self` is exclusive.
            unsafe { &mut *(std::ptr::slice_from_raw_parts_mut(self.inline.as_mut_ptr().cast::<T>(), self.len)) }
        }
    }
}

impl<T: OwnsNothing, const N: usize> Extend<T> for InlineVec<T, N> {
    #[inline(always)]
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let mut iter = iter.into_iter();
        if !self.spilled() {
            // The inline room is filled with the length and flag kept in registers, stored
            // once at the end instead of once per element.
            let (mut len, mut may_own) = (self.len, self.may_own);
            while len < N {
                let Some(value) = iter.next() else { break };
                may_own |= !value.owns_nothing();
                self.inline[len].write(value);
                len += 1;
            }
            (self.len, self.may_own) = (len, may_own);
        }
        for value in iter {
            self.push(value);
        }
    }
}

impl<T: OwnsNothing, const N: usize> Drop for InlineVec<T, N> {
    fn drop(&mut self) {
        if self.may_own && !self.spilled() {
            let len = self.len;
            self.len = 0;
            for slot in &mut self.inline[..len] {
                // SAFETY: the first `len` inline slots are initialised and dropped once.
                unsafe {
                    let value = slot.assume_init_mut();
                    if !value.owns_nothing() {
                        std::ptr::drop_in_place(value);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;
    use std::rc::Rc;

    impl OwnsNothing for Rc<()> {
        fn owns_nothing(&self) -> bool {
            false
        }
    }
    impl OwnsNothing for String {
        fn owns_nothing(&self) -> bool {
            self.capacity() == 0
        }
    }
    impl OwnsNothing for u8 {
        fn owns_nothing(&self) -> bool {
            true
        }
    }

    fn from_vec<T: OwnsNothing, const N: usize>(vec: Vec<T>) -> InlineVec<T, N> {
        let mut v = MaybeUninit::<InlineVec<T, N>>::uninit();
        // SAFETY: written by `write_from_vec`.
        unsafe {
            InlineVec::write_from_vec(v.as_mut_ptr(), vec);
            v.assume_init()
        }
    }

    fn new<T: OwnsNothing, const N: usize>() -> InlineVec<T, N> {
        let mut v = MaybeUninit::<InlineVec<T, N>>::uninit();
        // SAFETY: written by `write_empty`.
        unsafe {
            InlineVec::write_empty(v.as_mut_ptr());
            v.assume_init()
        }
    }

    #[test]
    fn push_spill_remove_and_drop() {
        let counter = Rc::new(());
        let mut v: InlineVec<Rc<()>, 2> = new();
        for _ in 0..2 {
            v.push(counter.clone());
        }
        assert_eq!(v.len(), 2);
        v.remove(0);
        assert_eq!(Rc::strong_count(&counter), 2);
        for _ in 0..4 {
            v.push(counter.clone());
        }
        assert_eq!(v.len(), 5);
        v.remove(3);
        assert_eq!(Rc::strong_count(&counter), 5);
        drop(v);
        assert_eq!(Rc::strong_count(&counter), 1);

        let mut small: InlineVec<String, 4> = new();
        small.extend(["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        assert_eq!(small.remove(1), "b");
        assert_eq!(&small[..], ["a", "c"]);
        small[0] = "z".into();
        assert_eq!(small.to_vec(), ["z", "c"]);
        let from = from_vec::<u8, 2>(vec![1, 2, 3]);
        assert_eq!(&from[..], [1, 2, 3]);
        let from = from_vec::<u8, 4>(vec![1, 2]);
        assert_eq!(&from[..], [1, 2]);
        let owned = from_vec::<String, 4>(vec!["x".to_owned()]);
        assert!(!owned.owns_nothing());
        assert!(from_vec::<u8, 4>(Vec::new()).is_empty());
    }
}

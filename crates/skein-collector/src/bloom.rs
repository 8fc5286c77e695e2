//! A Bloom filter over a frame's search terms (services, span names, `key=value` pairs), so
//! a search opens only the frames that may hold a match.

/// Hash functions per term; with 10 bits per term this gives about 1% false positives.
const HASHES: u64 = 7;
const BITS_PER_TERM: usize = 10;

/// A fixed-size Bloom filter stored as plain bytes.
pub struct Bloom {
    bits: Vec<u8>,
}

/// Two well-spread 64-bit hashes from a term's hash (a splitmix64 finish for the second).
fn hashes(h: u64) -> (u64, u64) {
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h, (z ^ (z >> 31)) | 1)
}

impl Bloom {
    /// Room for `terms` terms.
    pub fn with_capacity(terms: usize) -> Self {
        let bytes = (terms * BITS_PER_TERM).div_ceil(8).max(16);
        Bloom { bits: vec![0; bytes] }
    }

    /// A filter read back from storage (an empty one matches nothing).
    pub fn from_bytes(bits: Vec<u8>) -> Self {
        Bloom { bits }
    }

    /// The bytes to store.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bits
    }

    fn positions(&self, term: u64) -> impl Iterator<Item = usize> {
        let (a, b) = hashes(term);
        let n = (self.bits.len() * 8) as u64;
        (0..HASHES).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % n.max(1)) as usize)
    }

    /// Adds a term (by its 64-bit hash).
    pub fn insert(&mut self, term: u64) {
        let n = (self.bits.len() * 8) as u64;
        let (a, b) = hashes(term);
        for i in 0..HASHES {
            let p = (a.wrapping_add(i.wrapping_mul(b)) % n) as usize;
            self.bits[p / 8] |= 1 << (p % 8);
        }
    }

    /// False if the term is certainly absent.
    pub fn may_contain(&self, term: u64) -> bool {
        !self.bits.is_empty() && self.positions(term).all(|p| self.bits[p / 8] & (1 << (p % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_terms_are_found_and_few_others_are() {
        let mut bloom = Bloom::with_capacity(1000);
        let term = |i: u64| crate::search::term_attribute("key", &i.to_string());
        for i in 0..1000 {
            bloom.insert(term(i));
        }
        for i in 0..1000 {
            assert!(bloom.may_contain(term(i)));
        }
        let false_positives = (1000..11000).filter(|i| bloom.may_contain(term(*i))).count();
        assert!(false_positives < 300, "{false_positives} of 10000");
        let stored = Bloom::from_bytes(bloom.into_bytes());
        assert!(stored.may_contain(term(7)));
        assert!(!Bloom::from_bytes(Vec::new()).may_contain(term(7)));
    }
}

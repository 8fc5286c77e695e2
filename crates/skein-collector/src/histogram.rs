//! Duration histograms with logarithmic buckets (about 4% wide), kept per operation and
//! minute, so rates and percentiles over any range come from merging a few of them.

use std::collections::BTreeMap;

/// Buckets per doubling: bucket `i` covers `[2^(i/16), 2^((i+1)/16))` nanoseconds.
const PER_DOUBLING: f64 = 16.0;

/// Counts by bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    buckets: BTreeMap<u16, u64>,
}

fn bucket_of(nanos: u64) -> u16 {
    if nanos <= 1 {
        return 0;
    }
    ((nanos as f64).log2() * PER_DOUBLING) as u16
}

/// The middle of a bucket, in nanoseconds.
fn value_of(bucket: u16) -> u64 {
    (2f64).powf((f64::from(bucket) + 0.5) / PER_DOUBLING) as u64
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, nanos: u64) {
        *self.buckets.entry(bucket_of(nanos)).or_default() += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, c) in &other.buckets {
            *self.buckets.entry(*b).or_default() += c;
        }
    }

    /// The duration below which a fraction `q` of the counts lie (0 if empty).
    pub fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.values().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return value_of(*b);
            }
        }
        0
    }

    /// Compact bytes: (bucket u16, count u32) pairs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buckets.len() * 6);
        for (b, c) in &self.buckets {
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&(*c).min(u64::from(u32::MAX)).to_le_bytes()[..4]);
        }
        out
    }

    /// Reads [`Histogram::to_bytes`] output (a damaged tail is ignored).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut h = Histogram::default();
        for pair in bytes.chunks_exact(6) {
            let b = u16::from_le_bytes([pair[0], pair[1]]);
            let c = u32::from_le_bytes([pair[2], pair[3], pair[4], pair[5]]);
            *h.buckets.entry(b).or_default() += u64::from(c);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let mut h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        let close = |got: u64, want: u64| (got as f64 / want as f64 - 1.0).abs() < 0.05;
        assert!(close(h.quantile(0.5), 50_000_000), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.95), 95_000_000), "{}", h.quantile(0.95));
        assert!(close(h.quantile(0.99), 99_000_000), "{}", h.quantile(0.99));
        let back = Histogram::from_bytes(&h.to_bytes());
        assert_eq!(back, h);
        let mut merged = Histogram::default();
        merged.merge(&back);
        merged.merge(&back);
        assert_eq!(merged.quantile(0.5), h.quantile(0.5));
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}

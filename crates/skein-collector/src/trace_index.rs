//! Finding a trace's frames and its summary row without a B-tree keyed by trace id.
//!
//! Trace ids are random, so an index keyed by them takes every new trace to a different page
//! of the file, and with SQLite's write-ahead log each such page is written in full at every
//! commit: at ten million spans that was over 2 KB written per span and halved the ingest
//! rate. Instead every frame carries a small Bloom filter of its trace ids (stored with the
//! frame, in insertion order, and held in memory: about 4 bytes per trace), and a lookup by
//! trace id tests the filters of all frames, as Tempo does with its blocks. Trace summaries
//! are stored in arrival order; the writer remembers where the summaries of the most recent
//! traces are, so spans that arrive in later requests update the same row.

use std::collections::{HashMap, VecDeque};

/// Bits per trace id: with 10 independent probes in one 512-bit block, about one false
/// positive in ten million frames (each costs a frame read).
const BITS_PER_TRACE: usize = 48;
const PROBES: u32 = 10;
const BLOCK_WORDS: usize = 8;
/// The byte after a filter's words saying how it was made. Version 1 (no byte, 32 bits per
/// trace) drew its last three probes from almost the same bits for every trace: in effect 7
/// probes, and at ten million spans a lookup read a few wrong frames in one case out of ten.
/// Its filters are still read as they were written.
const FILTER_VERSION: u8 = 2;

/// A well-spread 64-bit hash of a trace id (SDKs do not all generate both halves randomly).
pub(crate) fn trace_key(trace_id: &[u8; 16]) -> u64 {
    let a = u64::from_le_bytes(trace_id[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(trace_id[8..].try_into().expect("8 bytes"));
    mix(a ^ mix(b))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The block and the bit pattern within it for a key: one cache line per test.
fn probe(key: u64, blocks: usize, version: u8) -> (usize, [u64; BLOCK_WORDS]) {
    let block = ((key >> 32).wrapping_mul(blocks as u64) >> 32) as usize;
    let mut pattern = [0u64; BLOCK_WORDS];
    // 9 bits per probe: seven from one hash, the rest from another.
    let mut h = mix(key);
    for probe in 0..PROBES {
        if probe == 7 {
            h = match version {
                1 => mix(h),
                _ => mix(key ^ 0x5851_f42d_4c95_7f2d),
            };
        }
        let bit = (h & 511) as usize;
        pattern[bit / 64] |= 1 << (bit % 64);
        h >>= 9;
    }
    (block, pattern)
}

/// The Bloom filter of one frame's trace ids, as stored (little-endian 64-bit words, then
/// the version byte).
pub(crate) fn frame_filter<'a>(trace_ids: impl ExactSizeIterator<Item = &'a [u8; 16]>) -> Vec<u8> {
    let blocks = (trace_ids.len() * BITS_PER_TRACE).div_ceil(BLOCK_WORDS * 64).max(1);
    let mut words = vec![0u64; blocks * BLOCK_WORDS];
    for id in trace_ids {
        let (block, pattern) = probe(trace_key(id), blocks, FILTER_VERSION);
        for (w, p) in words[block * BLOCK_WORDS..].iter_mut().zip(pattern) {
            *w |= p;
        }
    }
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    out.push(FILTER_VERSION);
    out
}

/// Every stored frame's trace-id filter, in one block of memory so a lookup streams through
/// it.
#[derive(Default)]
pub(crate) struct TraceIndex {
    /// (frame id, first word in `words`, number of blocks, filter version), in frame id order.
    frames: Vec<(i64, usize, usize, u8)>,
    words: Vec<u64>,
}

impl TraceIndex {
    /// Adds a frame's stored filter; a filter of the wrong shape is ignored (its frame is then
    /// found by searches only).
    pub fn add(&mut self, frame_id: i64, filter: &[u8]) {
        let block_bytes = BLOCK_WORDS * 8;
        let (words, version) = match filter.len() % block_bytes {
            0 => (filter, 1),
            1 if filter.last() == Some(&FILTER_VERSION) => (&filter[..filter.len() - 1], FILTER_VERSION),
            _ => return,
        };
        if words.is_empty() {
            return;
        }
        let start = self.words.len();
        self.words.extend(
            words
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
        self.frames.push((frame_id, start, words.len() / block_bytes, version));
    }

    /// The frames that may hold spans of the trace, oldest first.
    pub fn frames_of(&self, trace_id: &[u8; 16]) -> Vec<i64> {
        let key = trace_key(trace_id);
        let mut out = Vec::new();
        let mut last_shape = (0, 0);
        let mut last_probe = (0, [0u64; BLOCK_WORDS]);
        for &(frame_id, start, blocks, version) in &self.frames {
            // Frames mostly have the same size, so the probe is mostly reused.
            if (blocks, version) != last_shape {
                last_probe = probe(key, blocks, version);
                last_shape = (blocks, version);
            }
            let (block, pattern) = &last_probe;
            let words = &self.words[start + block * BLOCK_WORDS..start + (block + 1) * BLOCK_WORDS];
            if words.iter().zip(pattern).all(|(w, p)| w & p == *p) {
                out.push(frame_id);
            }
        }
        out
    }

    /// Forgets the frames retention deleted.
    pub fn remove(&mut self, deleted: &std::collections::HashSet<i64>) {
        if deleted.is_empty() {
            return;
        }
        let old = std::mem::take(self);
        for (frame_id, start, blocks, version) in old.frames {
            if !deleted.contains(&frame_id) {
                let from = self.words.len();
                self.words
                    .extend_from_slice(&old.words[start..start + blocks * BLOCK_WORDS]);
                self.frames.push((frame_id, from, blocks, version));
            }
        }
    }

    /// Memory held, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8 + self.frames.len() * std::mem::size_of::<(i64, usize, usize, u8)>()
    }
}

/// How many recent traces' summary rows are remembered (about 30 MB at most). Spans of an
/// older trace that arrive later start a second summary row, merged with the first when both
/// show up in one search.
pub(crate) const RECENT_TRACES: usize = 1 << 20;

/// Where the summaries of recent traces are: trace key → row id.
#[derive(Default)]
pub(crate) struct RecentTraces {
    rows: HashMap<u64, i64>,
    order: VecDeque<u64>,
    /// The next unused summary row (rows are given out when a trace's first frame is
    /// stored, before its summary is written).
    next_row: i64,
}

impl RecentTraces {
    pub fn get(&self, trace_id: &[u8; 16]) -> Option<i64> {
        self.rows.get(&trace_key(trace_id)).copied()
    }

    /// The trace's summary row: its recent one, else a new one.
    pub fn row_for(&mut self, trace_id: &[u8; 16]) -> i64 {
        if let Some(row) = self.get(trace_id) {
            return row;
        }
        let row = self.new_row();
        self.insert(trace_id, row);
        row
    }

    /// Rows up to `row` are taken.
    pub fn taken_through(&mut self, row: i64) {
        self.next_row = self.next_row.max(row + 1);
    }

    /// A row no trace has.
    pub fn new_row(&mut self) -> i64 {
        self.next_row = self.next_row.max(1);
        self.next_row += 1;
        self.next_row - 1
    }

    /// Remembers where a trace's summary is (or is to be written).
    pub fn insert(&mut self, trace_id: &[u8; 16], row: i64) {
        self.next_row = self.next_row.max(row + 1);
        let key = trace_key(trace_id);
        if self.rows.insert(key, row).is_none() {
            self.order.push_back(key);
            if self.order.len() > RECENT_TRACES {
                if let Some(old) = self.order.pop_front() {
                    self.rows.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[test]
    fn finds_every_frame_of_a_trace_and_few_others() {
        let mut index = TraceIndex::default();
        for frame in 0..2000u64 {
            let ids: Vec<[u8; 16]> = (frame * 64..frame * 64 + 64).map(id).collect();
            index.add(frame as i64, &frame_filter(ids.iter()));
        }
        // A trace in two frames.
        index.add(5000, &frame_filter([id(70)].iter()));
        assert_eq!(index.frames_of(&id(70)), vec![1, 5000]);
        let mut false_positives = 0;
        for n in 0..1000 {
            let found = index.frames_of(&id(n * 64 + 3));
            assert!(found.contains(&(n as i64)));
            false_positives += found.len() - 1;
        }
        // 2000 frames × 1000 lookups at about 1e-7 each: none expected (version 1 gave ~60).
        assert!(false_positives <= 2, "{false_positives} false positives");
        assert!(index.frames_of(&id(10_000_000)).len() <= 2);
    }

    #[test]
    fn removing_frames_keeps_the_others_findable() {
        let mut index = TraceIndex::default();
        for frame in 0..10u64 {
            index.add(frame as i64, &frame_filter([id(frame)].iter()));
        }
        index.remove(&[2, 3].into_iter().collect());
        assert!(index.frames_of(&id(2)).is_empty());
        assert_eq!(index.frames_of(&id(7)), vec![7]);
    }

    /// A version 1 filter, made as version 1 made them (no version byte).
    fn filter_v1(ids: &[[u8; 16]]) -> Vec<u8> {
        let blocks = (ids.len() * 32).div_ceil(BLOCK_WORDS * 64).max(1);
        let mut words = vec![0u64; blocks * BLOCK_WORDS];
        for id in ids {
            let (block, pattern) = probe(trace_key(id), blocks, 1);
            for (w, p) in words[block * BLOCK_WORDS..].iter_mut().zip(pattern) {
                *w |= p;
            }
        }
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn filters_written_by_version_one_are_still_read() {
        let mut index = TraceIndex::default();
        let old: Vec<[u8; 16]> = (0..64).map(id).collect();
        index.add(1, &filter_v1(&old));
        index.add(2, &frame_filter([id(1000)].iter()));
        assert_eq!(index.frames_of(&id(5)), vec![1]);
        assert_eq!(index.frames_of(&id(1000)), vec![2]);
    }

    #[test]
    fn a_damaged_filter_is_ignored() {
        let mut index = TraceIndex::default();
        index.add(1, &[1, 2, 3]);
        assert!(index.frames_of(&id(1)).is_empty());
    }

    #[test]
    fn recent_traces_forget_the_oldest() {
        let mut recent = RecentTraces::default();
        for n in 0..RECENT_TRACES as u64 + 1 {
            recent.insert(&id(n), n as i64);
        }
        assert_eq!(recent.get(&id(0)), None);
        assert_eq!(recent.get(&id(5)), Some(5));
    }
}

//! zstd with one reusable context per thread: creating a context per frame cost more than
//! compressing it (a large allocation and its release each time), and decompression is sized
//! by the frame's recorded content size rather than by the largest frame allowed.

use std::cell::RefCell;
use std::io;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses at level 1 (fast; frames are written on the receiving threads).
pub(crate) fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(1)?);
        }
        slot.as_mut().expect("just made").compress(data)
    })
}

/// Decompresses data of at most `limit` bytes (an error beyond).
pub(crate) fn decompress(data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let size = match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(size)) if size <= limit as u64 => size as usize,
        Ok(Some(_)) => return Err(io::Error::new(io::ErrorKind::InvalidData, "frame larger than allowed")),
        _ => limit,
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        slot.as_mut().expect("just made").decompress(data, size)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_what_is_too_large() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let packed = super::compress(&data).unwrap();
        assert_eq!(super::decompress(&packed, data.len()).unwrap(), data);
        assert!(super::decompress(&packed, data.len() - 1).is_err());
        assert!(super::decompress(b"not zstd", 1000).is_err());
    }
}

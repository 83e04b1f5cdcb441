#![no_main]
//! TCP reassembly: arbitrary (seq, bytes) segments must never panic or grow unbounded.
use libfuzzer_sys::fuzz_target;
use cordon_dpi::stream_tcp::{StreamDir, REASSEMBLY_DEPTH};

fuzz_target!(|data: &[u8]| {
    let mut d = StreamDir::default();
    d.init(u32::from_le_bytes([data.first().copied().unwrap_or(0), 0, 0, 0]));
    let mut total = 0u64;
    for chunk in data.chunks(11) {
        if chunk.len() < 4 {
            break;
        }
        let seq = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        total += d.add(seq, &chunk[4..]).len() as u64;
    }
    assert!(total <= REASSEMBLY_DEPTH);
});

#![no_main]
//! Whole pipeline on hostile frames: decode, defrag, flows, streams, app-layer, detection.
use libfuzzer_sys::fuzz_target;
use cordon_dpi::detect_engine::RuleSet;
use cordon_dpi::engine::{ChecksumMode, Engine};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let rules = Arc::new(RuleSet::load(&[("f".into(), "alert tcp any any -> any any (content:\"GET\"; sid:1;)\nalert http any any -> any any (file_data; content:\"X\"; sid:2;)".into())]));
    let mut e = Engine::new(rules, ChecksumMode::Off);
    let mut out = Vec::new();
    // Split the input into frames at 0xFF 0xFF markers; link type from the first byte.
    let lt = [1u32, 101, 113, 0][(data.first().copied().unwrap_or(0) & 3) as usize];
    for (i, f) in data.split(|&b| b == 0xff).enumerate() {
        e.process(lt, i as i64 * 1000, f, i as u32, &mut out);
    }
    e.finish(&mut out);
});

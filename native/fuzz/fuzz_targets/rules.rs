#![no_main]
//! The rule parser: any text loads or is rejected with a reason, never a panic.
use libfuzzer_sys::fuzz_target;
use cordon_dpi::detect_engine::RuleSet;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let rs = RuleSet::load(&[("f".into(), text)]);
    assert_eq!(rs.rules.len() + rs.errors.len() >= rs.total.min(rs.rules.len()), true);
});

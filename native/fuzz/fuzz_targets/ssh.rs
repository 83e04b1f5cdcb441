#![no_main]
//! SSH banners and binary packets up to NEWKEYS (KEXINIT for HASSH).
use cordon_dpi::applayer_parsers::feed_conversation;
use cordon_dpi::applayer_ssh::SshState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_conversation(&mut SshState::default(), data);
});

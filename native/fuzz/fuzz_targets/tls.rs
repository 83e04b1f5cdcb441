#![no_main]
//! TLS records of both directions: hellos, JA3/JA3S, certificate chains decoded with
//! x509-parser, SSLv2 hellos, events.
use cordon_dpi::applayer_parsers::feed_conversation;
use cordon_dpi::applayer_tls::TlsState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_conversation(&mut TlsState::default(), data);
});

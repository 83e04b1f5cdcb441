#![no_main]
//! DNS message and TLS ClientHello parsers.
use libfuzzer_sys::fuzz_target;
use cordon_dpi::applayer_dns::{parse_dns, split_tcp};
use cordon_dpi::applayer_tls::TlsState;

fuzz_target!(|data: &[u8]| {
    let _ = parse_dns(data);
    for m in split_tcp(data).0 {
        let _ = parse_dns(m);
    }
    let mut t = TlsState::default();
    for c in data.chunks(5) {
        t.parse_client(c);
    }
});

#![no_main]
//! HTTP request/response parsing and body decoding on hostile bytes.
use libfuzzer_sys::fuzz_target;
use cordon_dpi::applayer_http::HttpState;

fuzz_target!(|data: &[u8]| {
    let mut h = HttpState::new();
    let mid = data.len() / 2;
    for c in data[..mid].chunks(7) {
        h.parse_request(c);
    }
    for c in data[mid..].chunks(13) {
        h.parse_response(c);
    }
    h.close_request();
    h.close_response();
});

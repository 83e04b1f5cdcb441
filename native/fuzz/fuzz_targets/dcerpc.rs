#![no_main]
//! DCERPC over TCP: PDU reassembly, binds and their acknowledgements, fragmented calls.
use cordon_dpi::applayer_dcerpc::DcerpcState;
use cordon_dpi::applayer_parsers::feed_conversation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_conversation(&mut DcerpcState::default(), data);
});

#![no_main]
//! DCERPC over TCP (PDU reassembly, binds and their acknowledgements, fragmented calls) and
//! over UDP (connectionless PDUs).
use cordon_dpi::applayer_dcerpc::{DcerpcState, DcerpcUdpState};
use cordon_dpi::applayer_parsers::feed_conversation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_conversation(&mut DcerpcState::default(), data);
    feed_conversation(&mut DcerpcUdpState::default(), data);
});

#![no_main]
//! SMTP commands, replies, DATA/BDAT and the MIME decoding of messages.
use cordon_dpi::applayer_parsers::feed_conversation;
use cordon_dpi::applayer_smtp::SmtpState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_conversation(&mut SmtpState::default(), data);
});

#![no_main]
//! FTP control channel (commands, replies, PASV/PORT announcements) and a data channel
//! linked to it.
use cordon_dpi::applayer_ftp::{FtpDataState, FtpLink, FtpState};
use cordon_dpi::applayer_parsers::feed_conversation;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex};

fuzz_target!(|data: &[u8]| {
    let mid = data.len() / 2;
    feed_conversation(&mut FtpState::default(), &data[..mid]);
    let link = Arc::new(Mutex::new(FtpLink { command: data.first().copied().unwrap_or(0) % 3, file: Vec::new() }));
    feed_conversation(&mut FtpDataState::new(link), &data[mid..]);
});

#![no_main]
//! SMB 1/2/3 over NBSS: AndX chains, compounds, tree connects, files, named pipes (and the
//! DCERPC carried on them).
use cordon_dpi::applayer_parsers::feed_conversation;
use cordon_dpi::applayer_smb::SmbState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    feed_conversation(&mut SmbState::default(), data);
});

#![no_main]
//! Kerberos 5 messages (DER) over UDP datagrams and TCP records.
use cordon_dpi::applayer_krb5::{parse_msg, Krb5State};
use cordon_dpi::applayer_parsers::feed_conversation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_msg(data);
    feed_conversation(&mut Krb5State::new(true), data);
    feed_conversation(&mut Krb5State::new(false), data);
});

//! Cordon's DPI engine. Stages are named like Suricata's: decode_*, flow_*, stream_*,
//! applayer_*, detect_*, output_*; `engine` wires them together and `node` is the N-API
//! boundary (one call per batch of packets).

#[cfg(feature = "node")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod applayer_dcerpc;
pub mod applayer_decompress;
pub mod applayer_dispatch;
pub mod applayer_dns;
pub mod applayer_events;
pub mod applayer_ftp;
pub mod applayer_http;
pub mod applayer_krb5;
pub mod applayer_parsers;
pub mod applayer_smb;
pub mod applayer_smtp;
pub mod applayer_ssh;
pub mod applayer_tls;
pub mod applayer_tx;
pub mod applayer_udp;
pub mod decode_ip;
pub mod decode_packet;
pub mod community_id;
pub mod detect_alert;
pub mod detect_appkw;
pub mod detect_buffers;
pub mod detect_byte;
pub mod detect_classtype;
pub mod detect_ctx;
pub mod detect_engine;
pub mod detect_flowbits;
pub mod detect_flowint;
pub mod detect_header;
#[cfg(feature = "hyperscan")]
pub mod detect_hs;
pub mod detect_keywords;
pub mod detect_packet;
pub mod detect_parse;
pub mod detect_threshold;
pub mod detect_tx;
pub mod detect_vars;
pub mod engine;
pub mod flow_table;
pub mod logline;
pub mod output_eve;
pub mod stream_tcp;

#[cfg(feature = "node")]
mod node;

#[cfg(test)]
mod test_capture;

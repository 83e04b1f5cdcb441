#![no_main]
//! Whole pipeline on hostile frames: decode, defrag, flows, streams, app-layer, detection.
use libfuzzer_sys::fuzz_target;
use cordon_dpi::detect_engine::RuleSet;
use cordon_dpi::engine::{ChecksumMode, Engine};
use std::sync::{Arc, OnceLock};

static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Rules of every stage: payload, stream, HTTP buffers, DNS, TLS, pcre, flowbits, IP-only.
    let rules = RULES.get_or_init(|| {
        Arc::new(RuleSet::load(&[("f".into(), [
            r#"alert tcp any any -> any any (content:"GET"; sid:1;)"#,
            r#"alert http any any -> any any (file_data; content:"X"; sid:2;)"#,
            r#"alert http any any -> any any (http.uri; content:"/a"; http.host; content:"h"; sid:3;)"#,
            r#"alert dns any any -> any any (dns.query; content:"evil"; nocase; sid:4;)"#,
            r#"alert tls any any -> any any (tls.sni; content:"x"; sid:5;)"#,
            r#"alert tcp any any -> any any (flow:established,to_server; content:"a"; pcre:"/a.{0,3}b/R"; flowbits:set,f; sid:6;)"#,
            r#"alert ip [1.2.3.4,10.0.0.0/8,::1] any -> any any (msg:"ip only"; sid:7;)"#,
            r#"alert udp any any -> any 53 (content:"|00 01|"; offset:2; depth:4; sid:8;)"#,
            r#"alert icmp any any -> any any (itype:8; sid:9;)"#,
        ].join("\n"))]))
    });
    let mut e = Engine::new(rules.clone(), ChecksumMode::Off);
    let mut out = Vec::new();
    // Split the input into frames at 0xFF 0xFF markers; link type from the first byte.
    let lt = [1u32, 101, 113, 0][(data.first().copied().unwrap_or(0) & 3) as usize];
    for (i, f) in data.split(|&b| b == 0xff).enumerate() {
        e.process(lt, i as i64 * 1000, f, i as u32, &mut out);
    }
    e.finish(&mut out);
});

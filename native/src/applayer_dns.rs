//! DNS message parsing (queries; over UDP, or TCP with the 2-byte length prefix). Names with
//! compression pointers are followed with a hop limit, so loops cannot hang the parser.

use crate::decode_packet::be16;

#[derive(Debug, Clone, Default)]
pub struct DnsMessage {
    pub id: u16,
    pub response: bool,
    pub queries: Vec<Vec<u8>>,
}

fn read_name(msg: &[u8], mut o: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::new();
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *msg.get(o)? as usize;
        if len == 0 {
            o += 1;
            break;
        }
        if len & 0xc0 == 0xc0 {
            let ptr = (be16(msg, o)? & 0x3fff) as usize;
            if end.is_none() {
                end = Some(o + 2);
            }
            hops += 1;
            if hops > 16 {
                return None;
            }
            o = ptr;
            continue;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        let label = msg.get(o + 1..o + 1 + len)?;
        if !name.is_empty() {
            name.push(b'.');
        }
        name.extend_from_slice(label);
        if name.len() > 1024 {
            return None;
        }
        o += 1 + len;
    }
    Some((name, end.unwrap_or(o)))
}

pub fn parse_dns(msg: &[u8]) -> Option<DnsMessage> {
    if msg.len() < 12 {
        return None;
    }
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    let qd = be16(msg, 4)? as usize;
    let mut m = DnsMessage { id, response: flags & 0x8000 != 0, queries: Vec::new() };
    let mut o = 12;
    for _ in 0..qd.min(64) {
        let (name, end) = read_name(msg, o)?;
        o = end + 4;
        if o > msg.len() {
            return None;
        }
        m.queries.push(name);
    }
    Some(m)
}

/// Split a TCP DNS byte stream into messages; returns the messages and the bytes consumed.
pub fn split_tcp(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut o = 0;
    while let Some(len) = be16(buf, o) {
        let len = len as usize;
        let Some(m) = buf.get(o + 2..o + 2 + len) else { break };
        out.push(m);
        o += 2 + len;
    }
    (out, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn query_name() {
        let q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06google\x03com\x00\x00\x01\x00\x01";
        let m = parse_dns(q).unwrap();
        assert_eq!(m.queries, vec![b"google.com".to_vec()]);
        // a self-referencing pointer does not loop forever
        let bad = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01";
        assert!(parse_dns(bad).is_none());
    }
}

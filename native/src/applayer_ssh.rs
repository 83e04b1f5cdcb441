//! SSH: each side's identification banner (`SSH-<proto>-<software> [comments]`: ssh.proto,
//! ssh.software) and the binary packets up to NEWKEYS, from which the KEXINIT gives HASSH
//! (client) and HASSH server. After NEWKEYS a direction is encrypted and no longer parsed.
//! One transaction per flow, as in Suricata.

use crate::applayer_tx::{AppLayer, AppTxs, ParseEnv};
use crate::detect_parse::{Buf, Proto};
use md5::{Digest, Md5};

/// A banner longer than this is an anomaly (RFC 4253: 255 bytes with CRLF).
const MAX_BANNER: usize = 255;
/// Bytes held while waiting for a banner line or a packet.
const MAX_PENDING: usize = 64 * 1024;

#[derive(Default, Debug)]
struct Dir {
    buf: Vec<u8>,
    banner_done: bool,
    encrypted: bool,
    stopped: bool,
}

#[derive(Debug)]
pub struct SshState {
    dirs: [Dir; 2],
    txs: AppTxs,
}

impl Default for SshState {
    fn default() -> Self {
        let mut txs = AppTxs::default();
        txs.begin();
        SshState { dirs: Default::default(), txs }
    }
}

impl SshState {
    fn feed(&mut self, to_server: bool, data: &[u8]) -> bool {
        let d = usize::from(!to_server);
        if self.dirs[d].stopped || self.dirs[d].encrypted {
            return false;
        }
        let before = self.txs.txs[0].gen;
        let mut buf = std::mem::take(&mut self.dirs[d].buf);
        buf.extend_from_slice(data);
        let mut o = 0;
        if !self.dirs[d].banner_done {
            // Lines before the banner are allowed (from the server); the banner starts "SSH-".
            loop {
                let rest = &buf[o..];
                let Some(nl) = rest.iter().position(|&c| c == b'\n') else {
                    if rest.len() > MAX_BANNER && rest.starts_with(b"SSH-") {
                        self.txs.txs[0].event("ssh.long_banner", to_server);
                        self.dirs[d].stopped = true;
                    }
                    break;
                };
                let line = &rest[..nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                o += nl + 1;
                if let Some(id) = line.strip_prefix(b"SSH-") {
                    if line.len() + 2 > MAX_BANNER {
                        self.txs.txs[0].event("ssh.long_banner", to_server);
                    }
                    self.banner(to_server, id);
                    self.dirs[d].banner_done = true;
                    break;
                }
                if to_server {
                    // A client sends its banner first thing.
                    self.txs.txs[0].event("ssh.invalid_banner", to_server);
                    self.dirs[d].stopped = true;
                    break;
                }
            }
        }
        while self.dirs[d].banner_done && !self.dirs[d].encrypted && !self.dirs[d].stopped {
            let b = &buf[o..];
            if b.len() < 6 {
                break;
            }
            let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if !(2..=256 * 1024).contains(&len) {
                self.txs.txs[0].event("ssh.invalid_record", to_server);
                self.dirs[d].stopped = true;
                break;
            }
            if b.len() < 4 + len {
                if len > MAX_PENDING {
                    self.txs.txs[0].event("ssh.long_kex_record", to_server);
                    self.dirs[d].stopped = true;
                }
                break;
            }
            let pad = b[4] as usize;
            let msg_type = b[5];
            let payload_end = (4 + len).saturating_sub(pad).max(6);
            let payload = &b[6..payload_end.min(4 + len)];
            match msg_type {
                20 => self.kexinit(to_server, payload),
                21 => self.dirs[d].encrypted = true,
                _ => {}
            }
            o += 4 + len;
        }
        buf.drain(..o.min(buf.len()));
        if buf.len() > MAX_PENDING || self.dirs[d].encrypted || self.dirs[d].stopped {
            buf.clear();
        }
        self.dirs[d].buf = buf;
        self.txs.txs[0].gen != before
    }

    fn banner(&mut self, to_server: bool, id: &[u8]) {
        // <protoversion>-<softwareversion>[ SP comments]
        let Some(dash) = id.iter().position(|&c| c == b'-') else {
            self.txs.txs[0].event("ssh.invalid_banner", to_server);
            return;
        };
        let proto = &id[..dash];
        let rest = &id[dash + 1..];
        let sw_end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let tx = &mut self.txs.txs[0];
        tx.push_buf(Buf::SshProto, to_server, proto);
        tx.push_buf(Buf::SshSoftware, to_server, &rest[..sw_end]);
    }

    /// KEXINIT: cookie, then name-lists (kex, host key, enc c2s, enc s2c, mac c2s, mac s2c,
    /// compression c2s, compression s2c, ...): HASSH of the sender's lists.
    fn kexinit(&mut self, to_server: bool, p: &[u8]) {
        let mut o = 16;
        let mut lists: Vec<&[u8]> = Vec::with_capacity(8);
        for _ in 0..8 {
            let Some(l) = p.get(o..o + 4) else { return };
            let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
            let Some(v) = p.get(o + 4..o + 4 + n) else { return };
            lists.push(v);
            o += 4 + n;
        }
        let (enc, mac, cmp) = if to_server { (lists[2], lists[4], lists[6]) } else { (lists[3], lists[5], lists[7]) };
        let s = [lists[0], enc, mac, cmp].join(&b';');
        let hash = crate::applayer_tx::hex(&Md5::digest(&s));
        let tx = &mut self.txs.txs[0];
        if to_server {
            tx.push_buf(Buf::SshHasshString, true, &s);
            tx.push_buf(Buf::SshHassh, true, hash.as_bytes());
        } else {
            tx.push_buf(Buf::SshHasshServerString, false, &s);
            tx.push_buf(Buf::SshHasshServer, false, hash.as_bytes());
        }
    }
}

impl AppLayer for SshState {
    fn proto(&self) -> Proto {
        Proto::Ssh
    }
    fn parse(&mut self, to_server: bool, data: &[u8], _env: &mut ParseEnv) -> bool {
        self.feed(to_server, data)
    }
    fn close(&mut self, to_server: bool) -> bool {
        self.txs.txs[0].finish(to_server);
        false
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
    /// Both directions sent NEWKEYS: what follows is encrypted (Suricata stops inspecting the
    /// payload when the second NEWKEYS is parsed).
    fn payload_encrypted(&self) -> bool {
        self.dirs[0].encrypted && self.dirs[1].encrypted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_parse(s: &mut SshState, to_server: bool, d: &[u8]) -> bool {
        let mut e = Vec::new();
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        s.parse(to_server, d, &mut ParseEnv { client: (ip, 0), server: (ip, 0), ts_us: 0, expect: &mut e })
    }

    #[test]
    fn banners_of_both_sides() {
        let mut s = SshState::default();
        assert!(env_parse(&mut s, false, b"SSH-2.0-OpenSSH_7.4 Debian\r\n"));
        assert!(!env_parse(&mut s, true, b"SSH-1.99-Pu"));
        assert!(env_parse(&mut s, true, b"TTY_0.70\r\n"));
        let b: Vec<(Buf, bool, &[u8])> = s.txs.txs[0].bufs.iter().map(|(b, d, v)| (*b, *d, v.as_slice())).collect();
        assert_eq!(b, vec![(Buf::SshProto, false, &b"2.0"[..]), (Buf::SshSoftware, false, b"OpenSSH_7.4"), (Buf::SshProto, true, b"1.99"), (Buf::SshSoftware, true, b"PuTTY_0.70")]);
    }
}

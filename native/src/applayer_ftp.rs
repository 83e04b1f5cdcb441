//! FTP: the control channel's commands and replies (one transaction per command, its reply
//! attached in order; ftp.command, ftp.command_data, ftp.reply; PORT to another host than
//! the client is ftpbounce; a line over the maximum is the request/response_command_too_long
//! event and is cut), and the data channels it announces (PASV/EPSV replies, PORT/EPRT
//! commands): a new flow matching an announcement becomes ftp-data, its bytes the file of the
//! STOR or RETR that uses it (ftpdata_command, file.data).

use crate::applayer_tx::{AppLayer, AppTxs, Expectation, Field, ParseEnv};
use crate::detect_parse::{Buf, Proto};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Longest command or reply line kept (Suricata's default FTP max line length).
pub const MAX_LINE: usize = 4096;
/// File bytes of a data channel kept for inspection.
const MAX_FILE: usize = 1 << 20;

/// What a data channel carries, filled in by the control channel as it learns it (the data
/// connection is often opened before the STOR/RETR command that uses it).
#[derive(Debug, Default)]
pub struct FtpLink {
    /// 1 STOR, 2 RETR, 0 not known (yet).
    pub command: u8,
    pub file: Vec<u8>,
}

#[derive(Debug, Default)]
struct LineBuf {
    buf: Vec<u8>,
    /// The current line passed the maximum: the rest of it is dropped.
    skipping: bool,
    /// The cut line was already handed over (before its end arrived).
    emitted: bool,
}

impl LineBuf {
    /// Complete lines (without the line end) of `data` appended; `too_long` is set per line
    /// that was cut.
    fn lines(&mut self, data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        for &c in data {
            if c == b'\n' {
                if std::mem::take(&mut self.emitted) {
                    self.buf.clear();
                    self.skipping = false;
                    continue;
                }
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                out.push((line, std::mem::take(&mut self.skipping)));
                continue;
            }
            if self.buf.len() >= MAX_LINE {
                self.skipping = true;
                continue;
            }
            self.buf.push(c);
        }
        out
    }
}

#[derive(Debug, Default)]
pub struct FtpState {
    txs: AppTxs,
    lines: [LineBuf; 2],
    /// Transactions (keys) waiting for their reply, oldest first.
    waiting: Vec<u64>,
    next_key: u64,
    /// The announced data channel the next STOR/RETR uses.
    link: Option<Arc<Mutex<FtpLink>>>,
    /// A multi-line reply ("NNN-") in progress: its code.
    multiline: Option<[u8; 3]>,
    /// AUTH TLS/SSL was sent; its 234 reply turns the control channel into TLS.
    auth_tls: bool,
    tls: bool,
}

/// "h1,h2,h3,h4,p1,p2" of a PORT command or a 227 reply.
fn parse_hostport(s: &[u8]) -> Option<(IpAddr, u16)> {
    let t = std::str::from_utf8(s).ok()?;
    let start = t.find(|c: char| c.is_ascii_digit())?;
    let nums: Vec<u16> = t[start..].split(',').map(|x| x.trim_end_matches(|c: char| !c.is_ascii_digit()).trim().parse::<u16>()).take(6).collect::<Result<_, _>>().ok()?;
    if nums.len() != 6 || nums.iter().any(|&n| n > 255) {
        return None;
    }
    let ip = IpAddr::V4(Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8));
    Some((ip, nums[4] << 8 | nums[5]))
}

/// EPRT |proto|addr|port| or the port of an EPSV reply "(|||port|)".
fn parse_extended(s: &[u8]) -> Option<(Option<IpAddr>, u16)> {
    let t = std::str::from_utf8(s).ok()?;
    let open = t.find('|')?;
    let d = t[open..].chars().next()?;
    let parts: Vec<&str> = t[open + 1..].split(d).collect();
    if parts.len() < 3 {
        return None;
    }
    let ip = if parts[1].is_empty() {
        None
    } else {
        Some(match parts[0] {
            "2" => IpAddr::V6(parts[1].parse::<Ipv6Addr>().ok()?),
            _ => IpAddr::V4(parts[1].parse::<Ipv4Addr>().ok()?),
        })
    };
    Some((ip, parts[2].trim().parse().ok()?))
}

impl FtpState {
    fn announce(&mut self, env: &mut ParseEnv, to: (IpAddr, u16), from: IpAddr) {
        let link = Arc::new(Mutex::new(FtpLink::default()));
        self.link = Some(Arc::clone(&link));
        if env.expect.len() >= 1024 {
            env.expect.remove(0);
        }
        env.expect.push(Expectation { to, from, ts_us: env.ts_us, link });
    }

    fn command(&mut self, line: &[u8], too_long: bool, env: &mut ParseEnv) -> bool {
        let sp = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
        let cmd = line[..sp].to_ascii_uppercase();
        let arg = line.get(sp + 1..).unwrap_or(&[]);
        self.next_key += 1;
        let i = self.txs.begin();
        let key = self.next_key;
        let tx = &mut self.txs.txs[i];
        tx.key = key;
        tx.push_buf(Buf::FtpCommand, true, &cmd);
        if !arg.is_empty() {
            tx.push_buf(Buf::FtpCommandData, true, arg);
        }
        if too_long {
            tx.event("ftp.request_command_too_long", true);
        }
        tx.finish(true);
        self.waiting.push(key);
        if self.waiting.len() > 256 {
            self.waiting.remove(0);
        }
        match cmd.as_slice() {
            b"PORT" | b"EPRT" => {
                let hp = if cmd == b"PORT" { parse_hostport(arg) } else { parse_extended(arg).map(|(ip, p)| (ip.unwrap_or(env.client.0), p)) };
                if let Some((ip, port)) = hp {
                    if ip != env.client.0 {
                        self.txs.txs[i].set_field(Field::FtpBounce, true, 1);
                    }
                    // Active mode: the server connects to the client's address and port.
                    let server = env.server.0;
                    self.announce(env, (ip, port), server);
                }
            }
            b"AUTH" if arg.eq_ignore_ascii_case(b"TLS") || arg.eq_ignore_ascii_case(b"SSL") => self.auth_tls = true,
            b"STOR" | b"RETR" | b"APPE" | b"STOU" => {
                if let Some(l) = &self.link {
                    if let Ok(mut l) = l.lock() {
                        l.command = if cmd == b"RETR" { 2 } else { 1 };
                        l.file = arg.to_vec();
                    }
                }
            }
            _ => {}
        }
        true
    }

    fn reply(&mut self, line: &[u8], too_long: bool, env: &mut ParseEnv) -> bool {
        let code: Option<[u8; 3]> = line.get(..3).and_then(|c| c.try_into().ok()).filter(|c: &[u8; 3]| c.iter().all(u8::is_ascii_digit));
        // The lines of a multi-line reply belong to it; only its last line ends it.
        if let Some(open) = self.multiline {
            let last = code == Some(open) && line.get(3) != Some(&b'-');
            if !last {
                return self.reply_event(too_long);
            }
            self.multiline = None;
        } else if code.is_some() && line.get(3) == Some(&b'-') {
            self.multiline = code;
        }
        let Some(code) = code else { return self.reply_event(too_long) };
        match &code {
            b"234" if self.auth_tls => self.tls = true,
            b"227" => {
                if let Some((ip, port)) = parse_hostport(&line[3..]) {
                    let client = env.client.0;
                    self.announce(env, (ip, port), client);
                }
            }
            b"229" => {
                if let Some((ip, port)) = parse_extended(&line[3..]) {
                    let (client, server) = (env.client.0, env.server.0);
                    self.announce(env, (ip.unwrap_or(server), port), client);
                }
            }
            _ => {}
        }
        // Preliminary replies (1xx) leave the command waiting for its final reply.
        let final_reply = code[0] != b'1' && self.multiline.is_none();
        let key = if final_reply && !self.waiting.is_empty() { Some(self.waiting.remove(0)) } else { self.waiting.first().copied() };
        let Some(key) = key else {
            return self.reply_event(too_long);
        };
        let Some(tx) = self.txs.txs.iter_mut().find(|t| t.key == key) else { return false };
        tx.push_buf(Buf::FtpReply, false, line);
        if too_long {
            tx.event("ftp.response_command_too_long", false);
        }
        if final_reply {
            tx.finish(false);
        }
        true
    }

    /// A reply line without a command of its own (greeting, continuation): only its event.
    fn reply_event(&mut self, too_long: bool) -> bool {
        if !too_long {
            return false;
        }
        let key = self.waiting.first().copied();
        let tx = match key.and_then(|k| self.txs.txs.iter_mut().find(|t| t.key == k)) {
            Some(t) => t,
            None => {
                let i = self.txs.begin();
                &mut self.txs.txs[i]
            }
        };
        tx.event("ftp.response_command_too_long", false);
        true
    }
}

impl AppLayer for FtpState {
    fn proto(&self) -> Proto {
        Proto::Ftp
    }
    fn switches_protocol(&self) -> bool {
        self.tls
    }
    fn parse(&mut self, to_server: bool, data: &[u8], env: &mut ParseEnv) -> bool {
        if self.tls {
            return false;
        }
        let d = usize::from(!to_server);
        let lines = self.lines[d].lines(data);
        let mut changed = false;
        for (line, too_long) in lines {
            changed |= if to_server { self.command(&line, too_long, env) } else { self.reply(&line, too_long, env) };
        }
        // A line still growing past the maximum is reported once it is cut.
        if self.lines[d].skipping && !self.lines[d].emitted {
            self.lines[d].emitted = true;
            let line = self.lines[d].buf.clone();
            changed |= if to_server { self.command(&line, true, env) } else { self.reply(&line, true, env) };
        }
        changed
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
}

/// An FTP data channel: its bytes are one file.
#[derive(Debug)]
pub struct FtpDataState {
    txs: AppTxs,
    link: Arc<Mutex<FtpLink>>,
    file: Vec<u8>,
    command_set: bool,
}

impl FtpDataState {
    pub fn new(link: Arc<Mutex<FtpLink>>) -> FtpDataState {
        let mut txs = AppTxs::default();
        txs.begin();
        FtpDataState { txs, link, file: Vec::new(), command_set: false }
    }
}

impl AppLayer for FtpDataState {
    fn proto(&self) -> Proto {
        Proto::FtpData
    }
    fn parse(&mut self, to_server: bool, data: &[u8], _env: &mut ParseEnv) -> bool {
        let room = MAX_FILE.saturating_sub(self.file.len());
        self.file.extend_from_slice(&data[..data.len().min(room)]);
        let cmd = self.link.lock().map(|l| l.command).unwrap_or(0);
        let tx = &mut self.txs.txs[0];
        if cmd != 0 && !self.command_set {
            self.command_set = true;
            tx.set_field(Field::FtpdataCommand, to_server, cmd as u64);
        }
        tx.bufs.retain(|(b, _, _)| *b != Buf::FileData);
        tx.push_buf(Buf::FileData, to_server, &self.file);
        true
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_and_port_announce_data_channels() {
        assert_eq!(parse_hostport(b" Entering Passive Mode (2,2,2,2,185,13)."), Some((IpAddr::V4(Ipv4Addr::new(2, 2, 2, 2)), 185 * 256 + 13)));
        assert_eq!(parse_extended(b" Entering Extended Passive Mode (|||6446|)"), Some((None, 6446)));
        assert_eq!(parse_extended(b"|1|132.235.1.2|6275|"), Some((Some(IpAddr::V4(Ipv4Addr::new(132, 235, 1, 2))), 6275)));
        let mut expect = Vec::new();
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mut env = ParseEnv { client: (c, 4000), server: (s, 21), ts_us: 0, expect: &mut expect };
        let mut f = FtpState::default();
        f.parse(true, b"PASV\r\n", &mut env);
        f.parse(false, b"227 Entering Passive Mode (10,0,0,2,4,1).\r\n", &mut env);
        f.parse(true, b"STOR a.txt\r\n", &mut env);
        assert_eq!(expect.len(), 1);
        assert_eq!(expect[0].to, (s, 1025));
        assert_eq!(expect[0].link.lock().unwrap().command, 1);
    }

    #[test]
    fn long_lines_are_cut_with_an_event() {
        let mut expect = Vec::new();
        let ip = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let mut env = ParseEnv { client: (ip, 0), server: (ip, 0), ts_us: 0, expect: &mut expect };
        let mut f = FtpState::default();
        let long = [b"RETR ".to_vec(), vec![b'A'; 5000], b"\r\n".to_vec()].concat();
        f.parse(true, &long[..3000], &mut env);
        f.parse(true, &long[3000..], &mut env);
        f.parse(true, b"RETR x\r\n", &mut env);
        let evs: Vec<_> = f.txs.txs.iter().map(|t| t.events.clone()).collect();
        assert_eq!(evs, vec![vec!["ftp.request_command_too_long"], vec![]]);
    }
}

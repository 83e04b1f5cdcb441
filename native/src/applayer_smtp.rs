//! SMTP: the client's commands (HELO/EHLO, MAIL FROM, RCPT TO, DATA, BDAT, STARTTLS, RSET)
//! and the message each mail transaction carries. A transaction is one mail: smtp.helo,
//! smtp.mail_from, smtp.rcpt_to (each recipient), the message's header fields (email.from,
//! email.subject, ...) and its MIME attachments decoded (base64, quoted-printable) into
//! file.data, one buffer per attachment. After an accepted STARTTLS the stream is TLS: the
//! dispatcher recognises its protocol again.

use crate::applayer_tx::{AppLayer, AppTxs, ParseEnv};
use crate::detect_parse::{Buf, Proto};

/// Longest command line kept.
const MAX_LINE: usize = 4096;
/// Message bytes kept per mail for MIME decoding.
const MAX_MESSAGE: usize = 4 << 20;
/// MIME nesting and parts followed per message.
const MAX_DEPTH: usize = 8;
const MAX_PARTS: usize = 256;

#[derive(Debug, Default)]
pub struct SmtpState {
    txs: AppTxs,
    line: [Vec<u8>; 2],
    helo: Option<Vec<u8>>,
    /// In the DATA section (after the server's 354), or BDAT bytes still to read.
    in_data: bool,
    bdat_left: usize,
    bdat_last: bool,
    /// The DATA command was sent; its 354 reply opens the message.
    data_pending: bool,
    message: Vec<u8>,
    /// Key of the mail transaction in progress.
    cur: Option<u64>,
    next_key: u64,
    starttls_sent: bool,
    encrypted: bool,
}

impl SmtpState {
    fn tx_mut(&mut self) -> &mut crate::applayer_tx::AppTx {
        let key = match self.cur {
            Some(k) if self.txs.txs.iter().any(|t| t.key == k) => k,
            _ => {
                self.next_key += 1;
                let k = self.next_key;
                let i = self.txs.begin();
                self.txs.txs[i].key = k;
                if let Some(h) = &self.helo {
                    self.txs.txs[i].push_buf(Buf::SmtpHelo, true, h);
                }
                self.cur = Some(k);
                k
            }
        };
        let i = self.txs.txs.iter().rposition(|t| t.key == key).unwrap_or(0);
        &mut self.txs.txs[i]
    }

    fn command(&mut self, line: &[u8]) -> bool {
        let up = line.to_ascii_uppercase();
        let arg = |n: usize| trim(line.get(n..).unwrap_or(&[]));
        if up.starts_with(b"HELO") || up.starts_with(b"EHLO") {
            let h = arg(4).to_vec();
            self.helo = Some(h.clone());
            if self.cur.is_some() {
                self.tx_mut().push_buf(Buf::SmtpHelo, true, &h);
            }
            return self.cur.is_some();
        }
        if up.starts_with(b"MAIL FROM:") {
            // A new mail: the previous one is complete.
            if let Some(k) = self.cur.take() {
                self.finish(k);
            }
            let a = arg(10).to_vec();
            self.tx_mut().push_buf(Buf::SmtpMailFrom, true, &a);
            return true;
        }
        if up.starts_with(b"RCPT TO:") {
            let a = arg(8).to_vec();
            self.tx_mut().push_buf(Buf::SmtpRcptTo, true, &a);
            return true;
        }
        if up.starts_with(b"DATA") {
            self.data_pending = true;
            return false;
        }
        if up.starts_with(b"BDAT") {
            let mut it = arg(4).split(|&c| c == b' ').filter(|x| !x.is_empty());
            let n = it.next().and_then(|x| std::str::from_utf8(x).ok()?.parse::<usize>().ok()).unwrap_or(0);
            self.bdat_left = n;
            self.bdat_last = it.next().is_some_and(|x| x.eq_ignore_ascii_case(b"LAST"));
            self.in_data = n > 0;
            if n == 0 && self.bdat_last {
                return self.end_message();
            }
            return false;
        }
        if up.starts_with(b"STARTTLS") {
            self.starttls_sent = true;
            return false;
        }
        if up.starts_with(b"RSET") {
            if let Some(k) = self.cur.take() {
                self.finish(k);
            }
        }
        false
    }

    fn finish(&mut self, key: u64) {
        if let Some(t) = self.txs.txs.iter_mut().find(|t| t.key == key) {
            t.finish(true);
            t.finish(false);
        }
    }

    /// The message is complete: its headers and attachments into the transaction.
    fn end_message(&mut self) -> bool {
        self.in_data = false;
        let msg = std::mem::take(&mut self.message);
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let (headers, _) = split_headers(&msg);
        mime_files(&msg, 0, &mut parts);
        let tx = self.tx_mut();
        for (name, buf) in [
            (&b"from"[..], Buf::EmailFrom),
            (b"subject", Buf::EmailSubject),
            (b"to", Buf::EmailTo),
            (b"cc", Buf::EmailCc),
            (b"date", Buf::EmailDate),
            (b"message-id", Buf::EmailMessageId),
            (b"x-mailer", Buf::EmailXMailer),
        ] {
            if let Some(v) = header(&headers, name) {
                tx.push_buf(buf, true, &v);
            }
        }
        for p in &parts {
            tx.push_buf(Buf::FileData, true, p);
        }
        tx.touch(true);
        if let Some(k) = self.cur.take() {
            self.finish(k);
        }
        true
    }

    /// One line of the DATA section (dot-stuffing undone); true at its end.
    fn data_line(&mut self, line: &[u8]) -> bool {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if l == b"." {
            return self.end_message();
        }
        let l = if l.starts_with(b"..") { &line[1..] } else { line };
        if self.message.len() + l.len() + 1 <= MAX_MESSAGE {
            self.message.extend_from_slice(l);
            self.message.push(b'\n');
        }
        false
    }

    fn reply(&mut self, line: &[u8]) {
        if line.len() < 3 || line.get(3) == Some(&b'-') {
            return;
        }
        match &line[..3] {
            b"354" if self.data_pending => {
                self.data_pending = false;
                self.in_data = true;
                self.message.clear();
            }
            b"220" if self.starttls_sent => self.encrypted = true,
            c if c[0] >= b'4' => {
                self.data_pending = false;
                self.starttls_sent = false;
            }
            _ => {}
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map(|e| e + 1).unwrap_or(s);
    &b[s..e.max(s)]
}

/// A header block and what follows its blank line.
fn split_headers(m: &[u8]) -> (Vec<(Vec<u8>, Vec<u8>)>, &[u8]) {
    let mut hs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut o = 0;
    while o < m.len() {
        let end = m[o..].iter().position(|&c| c == b'\n').map(|p| o + p).unwrap_or(m.len());
        let line = m[o..end].strip_suffix(b"\r").unwrap_or(&m[o..end]);
        o = (end + 1).min(m.len());
        if line.is_empty() {
            return (hs, &m[o..]);
        }
        if (line[0] == b' ' || line[0] == b'\t') && !hs.is_empty() {
            let last = hs.len() - 1;
            hs[last].1.push(b' ');
            hs[last].1.extend_from_slice(trim(line));
            continue;
        }
        if let Some(c) = line.iter().position(|&c| c == b':') {
            if hs.len() < 256 {
                hs.push((trim(&line[..c]).to_ascii_lowercase(), trim(&line[c + 1..]).to_vec()));
            }
        }
    }
    (hs, &[])
}

fn header(hs: &[(Vec<u8>, Vec<u8>)], name: &[u8]) -> Option<Vec<u8>> {
    hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// A parameter of a header value (`boundary="x"`, `filename=a.pdf`).
fn param(v: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    for p in v.split(|&c| c == b';').skip(1) {
        let p = trim(p);
        let Some(eq) = p.iter().position(|&c| c == b'=') else { continue };
        if trim(&p[..eq]).eq_ignore_ascii_case(name) {
            let val = trim(&p[eq + 1..]);
            let val = val.strip_prefix(b"\"").and_then(|x| x.strip_suffix(b"\"")).unwrap_or(val);
            return Some(val.to_vec());
        }
    }
    None
}

fn quoted_printable(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if let Some(h) = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(h);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// base64 with line breaks and other non-alphabet bytes skipped (RFC 2045).
fn base64_mime(b: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = b.iter().copied().filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/').collect();
    let mut out = Vec::new();
    crate::detect_byte::base64_decode(&clean, &mut out);
    out
}

/// The attachments of a MIME entity (a message or a part), decoded.
fn mime_files(entity: &[u8], depth: usize, out: &mut Vec<Vec<u8>>) {
    if depth > MAX_DEPTH || out.len() >= MAX_PARTS {
        return;
    }
    let (hs, body) = split_headers(entity);
    let ctype = header(&hs, b"content-type").unwrap_or_default();
    if ctype.to_ascii_lowercase().starts_with(b"multipart/") {
        let Some(boundary) = param(&ctype, b"boundary") else { return };
        let delim = [b"--".as_slice(), &boundary].concat();
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut start: Option<usize> = None;
        let mut o = 0;
        while o < body.len() {
            let end = body[o..].iter().position(|&c| c == b'\n').map(|p| o + p).unwrap_or(body.len());
            let line = body[o..end].strip_suffix(b"\r").unwrap_or(&body[o..end]);
            if line.starts_with(&delim) {
                if let Some(s) = start {
                    parts.push(&body[s..o]);
                }
                if line[delim.len()..].starts_with(b"--") {
                    start = None;
                    break;
                }
                start = Some((end + 1).min(body.len()));
            }
            o = end + 1;
        }
        if let Some(s) = start {
            parts.push(&body[s.min(body.len())..]);
        }
        for p in parts {
            mime_files(p, depth + 1, out);
        }
        return;
    }
    if ctype.to_ascii_lowercase().starts_with(b"message/rfc822") {
        mime_files(body, depth + 1, out);
        return;
    }
    let disp = header(&hs, b"content-disposition").unwrap_or_default();
    let attachment = disp.to_ascii_lowercase().starts_with(b"attachment") || param(&disp, b"filename").is_some() || param(&ctype, b"name").is_some();
    if !attachment {
        return;
    }
    let cte = header(&hs, b"content-transfer-encoding").unwrap_or_default().to_ascii_lowercase();
    let data = if cte.starts_with(b"base64") {
        base64_mime(body)
    } else if cte.starts_with(b"quoted-printable") {
        quoted_printable(body)
    } else {
        body.to_vec()
    };
    out.push(data);
}

impl AppLayer for SmtpState {
    fn proto(&self) -> Proto {
        Proto::Smtp
    }
    fn parse(&mut self, to_server: bool, data: &[u8], _env: &mut ParseEnv) -> bool {
        if self.encrypted {
            return false;
        }
        let mut changed = false;
        let mut d = data;
        if to_server && self.bdat_left > 0 {
            let take = d.len().min(self.bdat_left);
            if self.message.len() + take <= MAX_MESSAGE {
                self.message.extend_from_slice(&d[..take]);
            }
            self.bdat_left -= take;
            d = &d[take..];
            if self.bdat_left == 0 {
                self.in_data = false;
                if self.bdat_last {
                    changed |= self.end_message();
                }
            }
        }
        let side = usize::from(!to_server);
        for &c in d {
            if c != b'\n' {
                if self.line[side].len() < MAX_LINE || (to_server && self.in_data) {
                    self.line[side].push(c);
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line[side]);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if to_server {
                if self.in_data {
                    changed |= self.data_line(&line);
                } else {
                    changed |= self.command(&line);
                }
            } else {
                self.reply(&line);
                if self.encrypted {
                    break;
                }
            }
        }
        changed
    }
    fn switches_protocol(&self) -> bool {
        self.encrypted
    }
    fn close(&mut self, _to_server: bool) -> bool {
        if self.in_data && !self.message.is_empty() {
            return self.end_message();
        }
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
    fn a_mail_with_an_attachment() {
        let mut s = SmtpState::default();
        let mut e = Vec::new();
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let mut env = ParseEnv { client: (ip, 0), server: (ip, 0), ts_us: 0, expect: &mut e };
        s.parse(false, b"220 mx ESMTP\r\n", &mut env);
        s.parse(true, b"EHLO GP\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n", &mut env);
        s.parse(false, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", &mut env);
        let msg = b"From: a@b.c\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nbody\r\n--XX\r\nContent-Type: application/octet-stream; name=\"f.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8g\r\nd29ybGQ=\r\n--XX--\r\n.\r\n";
        assert!(s.parse(true, msg, &mut env));
        let tx = &s.txs.txs[0];
        let get = |b: Buf| tx.bufs.iter().filter(|(x, _, _)| *x == b).map(|(_, _, v)| v.clone()).collect::<Vec<_>>();
        assert_eq!(get(Buf::SmtpHelo), vec![b"GP".to_vec()]);
        assert_eq!(get(Buf::SmtpMailFrom), vec![b"<a@b.c>".to_vec()]);
        assert_eq!(get(Buf::SmtpRcptTo), vec![b"<x@y.z>".to_vec()]);
        assert_eq!(get(Buf::EmailSubject), vec![b"hi".to_vec()]);
        assert_eq!(get(Buf::FileData), vec![b"hello world".to_vec()]);
    }
}

//! SMB 1 and SMB 2/3 over NetBIOS session service (TCP 139/445): records reassembled per
//! direction, SMB1 AndX chains and SMB2 compounds walked message by message. Tree connects
//! are transactions with the share (smb.share) or, when the server says it is IPC, the named
//! pipe (smb.named_pipe); files opened by create requests collect what writes and reads carry
//! (file.data, one transaction per file, data placed at its offset, an overlap that changes
//! bytes is the smb.file_overlap event); data written to and read from a named pipe, by
//! read/write, SMB1 TransactNmPipe or SMB2 FSCTL_PIPE_TRANSCEIVE, is DCERPC, parsed by a
//! DCERPC association per pipe whose calls become transactions here too.

use crate::applayer_dcerpc::DceAssoc;
use crate::applayer_tx::{AppLayer, AppTxs, ParseEnv};
use crate::detect_parse::{Buf, Proto};

/// An NBSS record larger than this is skipped, not reassembled.
const MAX_RECORD: usize = 1 << 20;
/// File bytes kept for inspection per file.
const MAX_FILE: usize = 1 << 20;
/// Bounds on what one flow tracks.
const MAX_FILES: usize = 256;
const MAX_PENDING: usize = 1024;

fn le16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(o)?, *b.get(o + 1)?]))
}
fn le32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// A string of an SMB message: UTF-16LE (as UTF-8) or 8-bit, up to its NUL.
fn smb_string(b: &[u8], unicode: bool) -> Vec<u8> {
    if unicode {
        let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
        String::from_utf16_lossy(&units).into_bytes()
    } else {
        b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())].to_vec()
    }
}

#[derive(Debug)]
struct SmbFile {
    /// FID (SMB1: 2 bytes) or file id (SMB2: 16 bytes).
    fid: Vec<u8>,
    is_pipe: bool,
    dce: Option<DceAssoc>,
    /// File content as placed by offset, and which bytes are known.
    data: Vec<u8>,
    have: Vec<bool>,
    /// The file's transaction (key), once data arrived.
    tx_key: Option<u64>,
    overlap: bool,
}

#[derive(Debug)]
enum Pending {
    TreeConnect { tx_key: u64 },
    Create { tid: u32 },
    Read { fid: Vec<u8>, offset: u64 },
    Pipe { fid: Vec<u8> },
}

#[derive(Debug, Default)]
pub struct SmbState {
    txs: AppTxs,
    rec: [Vec<u8>; 2],
    /// Tree id → is a named pipe share (IPC$).
    trees: Vec<(u32, bool)>,
    files: Vec<SmbFile>,
    /// Requests waiting for their response, by message key.
    pending: Vec<(u64, Pending)>,
    next_key: u64,
}

impl SmbState {
    fn tree_is_pipe(&self, tid: u32) -> bool {
        self.trees.iter().rev().find(|t| t.0 == tid).is_some_and(|t| t.1)
    }

    fn take_pending(&mut self, key: u64) -> Option<Pending> {
        let i = self.pending.iter().position(|(k, _)| *k == key)?;
        Some(self.pending.remove(i).1)
    }

    fn add_pending(&mut self, key: u64, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push((key, p));
    }

    fn open_file(&mut self, fid: Vec<u8>, is_pipe: bool) {
        self.files.retain(|f| f.fid != fid);
        if self.files.len() >= MAX_FILES {
            self.files.remove(0);
        }
        self.files.push(SmbFile { fid, is_pipe, dce: is_pipe.then(DceAssoc::default), data: Vec::new(), have: Vec::new(), tx_key: None, overlap: false });
    }

    /// Data written to (`to_server`) or read from a file or pipe.
    fn file_data(&mut self, to_server: bool, fid: &[u8], offset: u64, data: &[u8]) -> bool {
        if data.is_empty() {
            return false;
        }
        let idx = match self.files.iter().position(|f| f.fid == fid) {
            Some(i) => i,
            None => {
                // A file opened before the capture: data still counts (not as a pipe).
                self.open_file(fid.to_vec(), false);
                self.files.len() - 1
            }
        };
        if self.files[idx].is_pipe {
            let mut dce = self.files[idx].dce.take().unwrap_or_default();
            let changed = dce.feed(to_server, data, &mut self.txs);
            self.files[idx].dce = Some(dce);
            return changed;
        }
        let f = &mut self.files[idx];
        let start = offset as usize;
        if offset > MAX_FILE as u64 || start >= MAX_FILE {
            return false;
        }
        let end = (start + data.len()).min(MAX_FILE);
        let data = &data[..end - start];
        if f.data.len() < end {
            f.data.resize(end, 0);
            f.have.resize(end, false);
        }
        let mut overlap = false;
        for (i, &b) in data.iter().enumerate() {
            let at = start + i;
            if f.have[at] {
                // Data for bytes already received (Suricata: offset below what it tracked).
                overlap = true;
                continue;
            }
            f.data[at] = b;
            f.have[at] = true;
        }
        let key = match f.tx_key {
            Some(k) => k,
            None => {
                self.next_key += 1;
                let k = 2 << 40 | self.next_key;
                self.files[idx].tx_key = Some(k);
                let i = self.txs.begin();
                self.txs.txs[i].key = k;
                k
            }
        };
        let f = &mut self.files[idx];
        let new_overlap = overlap;
        f.overlap |= overlap;
        let content = f.data.clone();
        let Some(tx) = self.txs.txs.iter_mut().rev().find(|t| t.key == key) else { return false };
        // The file's bytes so far, in one buffer (replaced as the file grows).
        tx.bufs.retain(|(b, _, _)| *b != Buf::FileData);
        tx.push_buf(Buf::FileData, to_server, &content);
        if new_overlap {
            tx.event("smb.file_overlap", to_server);
        }
        true
    }

    fn close_file(&mut self, fid: &[u8]) {
        if let Some(f) = self.files.iter().find(|f| f.fid == fid) {
            if let Some(k) = f.tx_key {
                if let Some(tx) = self.txs.txs.iter_mut().find(|t| t.key == k) {
                    tx.finish(true);
                    tx.finish(false);
                }
            }
        }
        self.files.retain(|f| f.fid != fid);
    }

    fn tree_request(&mut self, key: u64, path: Vec<u8>) -> bool {
        self.next_key += 1;
        let tx_key = 3 << 40 | self.next_key;
        let i = self.txs.begin();
        let tx = &mut self.txs.txs[i];
        tx.key = tx_key;
        tx.wait_reply = true;
        tx.push_buf(Buf::SmbShare, true, &path);
        tx.finish(true);
        self.add_pending(key, Pending::TreeConnect { tx_key });
        true
    }

    fn tree_response(&mut self, key: u64, ok: bool, tid: u32, is_pipe: bool) -> bool {
        let Some(Pending::TreeConnect { tx_key }) = self.take_pending(key) else { return false };
        if ok {
            self.trees.retain(|t| t.0 != tid);
            self.trees.push((tid, is_pipe));
        }
        let Some(tx) = self.txs.txs.iter_mut().find(|t| t.key == tx_key) else { return false };
        if ok && is_pipe {
            // A named pipe share: what the request named is the pipe, not a share.
            for b in tx.bufs.iter_mut() {
                if b.0 == Buf::SmbShare {
                    b.0 = Buf::SmbNamedPipe;
                }
            }
        }
        tx.touch(false);
        tx.finish(false);
        true
    }

    /// One SMB1 message (from its \xffSMB).
    fn smb1(&mut self, to_server: bool, m: &[u8]) -> bool {
        if m.len() < 35 {
            return false;
        }
        let status = le32(m, 5).unwrap_or(0);
        let unicode = le16(m, 10).unwrap_or(0) & 0x8000 != 0;
        let tid = le16(m, 24).unwrap_or(0) as u32;
        let pid = le16(m, 26).unwrap_or(0) as u64;
        let mid = le16(m, 30).unwrap_or(0) as u64;
        let key = 1 << 48 | pid << 16 | mid;
        let mut cmd = m[4];
        let mut off = 32usize;
        let mut changed = false;
        for _ in 0..16 {
            let Some(&wc) = m.get(off) else { break };
            let wstart = off + 1;
            let wend = wstart + 2 * wc as usize;
            let Some(words) = m.get(wstart..wend) else { break };
            let bc = le16(m, wend).unwrap_or(0) as usize;
            let bstart = wend + 2;
            let bytes = m.get(bstart..(bstart + bc).min(m.len())).unwrap_or(&[]);
            changed |= self.smb1_command(to_server, m, cmd, words, bytes, bstart, status, unicode, tid, key);
            // AndX: the next command and where it starts.
            let andx = matches!(cmd, 0x24 | 0x2d | 0x2e | 0x2f | 0x73 | 0x74 | 0x75 | 0xa2);
            if !andx || words.len() < 4 || words[0] == 0xff {
                break;
            }
            let next = le16(words, 2).unwrap_or(0) as usize;
            if next <= off || next >= m.len() {
                break;
            }
            cmd = words[0];
            off = next;
        }
        changed
    }

    #[allow(clippy::too_many_arguments)]
    fn smb1_command(&mut self, to_server: bool, m: &[u8], cmd: u8, w: &[u8], bytes: &[u8], bstart: usize, status: u32, unicode: bool, tid: u32, key: u64) -> bool {
        match (cmd, to_server) {
            // TREE_CONNECT_ANDX
            (0x75, true) => {
                let pwlen = le16(w, 6).unwrap_or(0) as usize;
                let mut p = pwlen;
                if unicode && (bstart + p) % 2 == 1 {
                    p += 1;
                }
                let path = smb_string(bytes.get(p..).unwrap_or(&[]), unicode);
                self.tree_request(key, path)
            }
            (0x75, false) => {
                let service = smb_string(bytes, false);
                self.tree_response(key, status == 0, tid, service.starts_with(b"IPC"))
            }
            // NT_CREATE_ANDX
            (0xa2, true) => {
                self.add_pending(key, Pending::Create { tid });
                false
            }
            (0xa2, false) => {
                if let (Some(Pending::Create { tid }), true) = (self.take_pending(key), status == 0) {
                    if let Some(fid) = w.get(5..7) {
                        let pipe = self.tree_is_pipe(tid);
                        self.open_file(fid.to_vec(), pipe);
                    }
                }
                false
            }
            // WRITE_ANDX
            (0x2f, true) => {
                let (Some(fid), Some(off)) = (w.get(4..6), le32(w, 6)) else { return false };
                let hi = if w.len() >= 28 { le32(w, 24).unwrap_or(0) as u64 } else { 0 };
                let len = (le16(w, 20).unwrap_or(0) as usize) | (le16(w, 18).unwrap_or(0) as usize) << 16;
                let doff = le16(w, 22).unwrap_or(0) as usize;
                let Some(data) = m.get(doff..(doff + len).min(m.len())) else { return false };
                let fid = fid.to_vec();
                self.file_data(true, &fid, hi << 32 | off as u64, data)
            }
            // READ_ANDX
            (0x2e, true) => {
                let (Some(fid), Some(off)) = (w.get(4..6), le32(w, 6)) else { return false };
                let hi = if w.len() >= 24 { le32(w, 20).unwrap_or(0) as u64 } else { 0 };
                self.add_pending(key, Pending::Read { fid: fid.to_vec(), offset: hi << 32 | off as u64 });
                false
            }
            (0x2e, false) => {
                let Some(Pending::Read { fid, offset }) = self.take_pending(key) else { return false };
                let len = le16(w, 10).unwrap_or(0) as usize;
                let doff = le16(w, 12).unwrap_or(0) as usize;
                let Some(data) = m.get(doff..(doff + len).min(m.len())) else { return false };
                self.file_data(false, &fid, offset, data)
            }
            // TRANSACTION: TransactNmPipe carries DCERPC on the pipe.
            (0x25, true) => {
                let dcount = le16(w, 22).unwrap_or(0) as usize;
                let doff = le16(w, 24).unwrap_or(0) as usize;
                let setup_count = *w.get(26).unwrap_or(&0);
                if setup_count < 2 || le16(w, 28) != Some(0x26) {
                    return false;
                }
                let Some(fid) = w.get(30..32).map(|f| f.to_vec()) else { return false };
                self.add_pending(key, Pending::Pipe { fid: fid.clone() });
                let Some(data) = m.get(doff..(doff + dcount).min(m.len())) else { return false };
                self.file_data(true, &fid, 0, data)
            }
            (0x25, false) => {
                let Some(Pending::Pipe { fid }) = self.take_pending(key) else { return false };
                let dcount = le16(w, 12).unwrap_or(0) as usize;
                let doff = le16(w, 14).unwrap_or(0) as usize;
                let Some(data) = m.get(doff..(doff + dcount).min(m.len())) else { return false };
                self.file_data(false, &fid, 0, data)
            }
            // CLOSE
            (0x04, true) => {
                if let Some(fid) = w.get(0..2).map(|f| f.to_vec()) {
                    self.close_file(&fid);
                }
                false
            }
            _ => false,
        }
    }

    /// SMB2 messages (a compound chain) from the first \xfeSMB.
    fn smb2(&mut self, to_server: bool, rec: &[u8]) -> bool {
        let mut changed = false;
        let mut o = 0usize;
        for _ in 0..32 {
            let Some(m) = rec.get(o..) else { break };
            if m.len() < 64 || &m[..4] != b"\xfeSMB" {
                break;
            }
            let next = le32(m, 20).unwrap_or(0) as usize;
            let msg = if next >= 64 && next <= m.len() { &m[..next] } else { m };
            changed |= self.smb2_message(to_server, msg);
            if next < 64 {
                break;
            }
            o += next;
        }
        changed
    }

    fn smb2_message(&mut self, to_server: bool, m: &[u8]) -> bool {
        let status = le32(m, 8).unwrap_or(0);
        let cmd = le16(m, 12).unwrap_or(0);
        let flags = le32(m, 16).unwrap_or(0);
        let msg_id = le64(m, 24).unwrap_or(0);
        let tree = if flags & 4 == 0 { le32(m, 36).unwrap_or(0) } else { 0 };
        let key = 2 << 48 | (msg_id & 0xffff_ffff_ffff);
        let b = &m[64..];
        let fid = |o: usize| b.get(o..o + 16).map(|f| f.to_vec());
        let slice = |off: usize, len: usize| m.get(off..off.saturating_add(len).min(m.len()));
        // An async interim response (STATUS_PENDING) is not the answer.
        if !to_server && status == 0x0000_0103 {
            return false;
        }
        match (cmd, to_server) {
            (3, true) => {
                let (Some(po), Some(pl)) = (le16(b, 4), le16(b, 6)) else { return false };
                let path = slice(po as usize, pl as usize).map(|p| smb_string(p, true)).unwrap_or_default();
                self.tree_request(key, path)
            }
            (3, false) => {
                let share_type = *b.get(2).unwrap_or(&0);
                self.tree_response(key, status == 0, le32(m, 36).unwrap_or(0), share_type == 2)
            }
            (5, true) => {
                self.add_pending(key, Pending::Create { tid: tree });
                false
            }
            (5, false) => {
                if let (Some(Pending::Create { tid }), true) = (self.take_pending(key), status == 0) {
                    if let Some(f) = fid(64) {
                        let pipe = self.tree_is_pipe(tid);
                        self.open_file(f, pipe);
                    }
                }
                false
            }
            (9, true) => {
                let (Some(doff), Some(len), Some(off), Some(f)) = (le16(b, 2), le32(b, 4), le64(b, 8), fid(16)) else { return false };
                let Some(data) = slice(doff as usize, len as usize) else { return false };
                self.file_data(true, &f, off, data)
            }
            (8, true) => {
                let (Some(off), Some(f)) = (le64(b, 8), fid(16)) else { return false };
                self.add_pending(key, Pending::Read { fid: f, offset: off });
                false
            }
            (8, false) => {
                let Some(Pending::Read { fid, offset }) = self.take_pending(key) else { return false };
                if status != 0 && status != 0x8000_0005 {
                    return false;
                }
                let (Some(&doff), Some(len)) = (b.get(2), le32(b, 4)) else { return false };
                let Some(data) = slice(doff as usize, len as usize) else { return false };
                self.file_data(false, &fid, offset, data)
            }
            (11, true) => {
                let (Some(ctl), Some(f), Some(io), Some(ic)) = (le32(b, 4), fid(8), le32(b, 24), le32(b, 28)) else { return false };
                if ctl != 0x0011_c017 {
                    return false;
                }
                self.add_pending(key, Pending::Pipe { fid: f.clone() });
                let Some(data) = slice(io as usize, ic as usize) else { return false };
                self.file_data(true, &f, 0, data)
            }
            (11, false) => {
                let Some(Pending::Pipe { fid }) = self.take_pending(key) else { return false };
                let (Some(oo), Some(oc)) = (le32(b, 32), le32(b, 36)) else { return false };
                let Some(data) = slice(oo as usize, oc as usize) else { return false };
                self.file_data(false, &fid, 0, data)
            }
            (6, true) => {
                if let Some(f) = fid(8) {
                    self.close_file(&f);
                }
                false
            }
            _ => false,
        }
    }

    /// One NBSS record's SMB content.
    fn record(&mut self, to_server: bool, r: &[u8]) -> bool {
        if r.len() < 4 {
            return false;
        }
        match &r[..4] {
            b"\xffSMB" => self.smb1(to_server, r),
            b"\xfeSMB" => self.smb2(to_server, r),
            _ => false,
        }
    }
}

impl AppLayer for SmbState {
    fn proto(&self) -> Proto {
        Proto::Smb
    }
    fn parse(&mut self, to_server: bool, data: &[u8], _env: &mut ParseEnv) -> bool {
        let d = usize::from(!to_server);
        let mut buf = std::mem::take(&mut self.rec[d]);
        buf.extend_from_slice(data);
        let mut o = 0;
        let mut changed = false;
        while buf.len() - o >= 4 {
            let h = &buf[o..];
            let len = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
            if len > MAX_RECORD {
                o = buf.len();
                break;
            }
            if h.len() < 4 + len {
                break;
            }
            if h[0] == 0 {
                let rec = h[4..4 + len].to_vec();
                changed |= self.record(to_server, &rec);
            }
            o += 4 + len;
        }
        buf.drain(..o);
        self.rec[d] = buf;
        changed
    }
    fn close(&mut self, _to_server: bool) -> bool {
        false
    }
    fn txs(&self) -> &AppTxs {
        &self.txs
    }
    fn txs_mut(&mut self) -> &mut AppTxs {
        &mut self.txs
    }
}

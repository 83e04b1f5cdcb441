//! Process events for the agent: exec, exit and uid changes from the kernel's process events
//! connector (netlink NETLINK_CONNECTOR, group CN_IDX_PROC), or — where the connector cannot be
//! opened (not root, a kernel without it) — from polling /proc.
//!
//! Why the details are read here, on the reading thread, the moment an exec arrives: a short
//! process (`/bin/true`, a `curl | sh` stage) is gone a millisecond later, and with it its
//! /proc entry. Node would read it far too late. Fork events are not handed over (a fork bomb
//! is mostly forks) but remembered in a bounded pid → parent map, so an exec whose /proc entry
//! vanished still names its parent.
//!
//! Nothing is lost silently: a full queue (Node not draining) counts `dropped_queue`, an
//! overflowing socket (ENOBUFS: the kernel dropped events it could not queue) counts
//! `dropped_kernel`, and an exec whose /proc entry was gone before it could be read counts
//! `incomplete` (the event is still handed over, with what the kernel said).

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadSafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsFunction};
use napi_derive::napi;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;

const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_UID: u32 = 0x0000_0004;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// Forks remembered for their parent (a fork bomb fills it; the oldest go first).
const MAX_FORKS: usize = 65_536;
/// Executables whose hash is remembered (by device, inode, mtime, size).
const MAX_HASHES: usize = 4096;
/// The most of a command line read (the kernel's own limit is far larger).
const MAX_CMDLINE: usize = 32 * 1024;
const MAX_ARGS: usize = 256;
/** The reader thread's nice value while boosted. */
const BOOST_NICE: i32 = -10;
const BOOST_WINDOW: Duration = Duration::from_millis(250);

#[napi(object)]
#[derive(Clone, Default)]
pub struct ProcEvent {
    /// exec, exit or uid.
    pub kind: String,
    pub pid: u32,
    pub ppid: u32,
    /// Session id (the session leader's pid); 0 when unknown.
    pub sid: u32,
    pub uid: u32,
    pub euid: u32,
    /// The executable's path (`/proc/<pid>/exe`), without the " (deleted)" suffix; empty when unknown.
    pub exe: String,
    /// The executable was deleted (or replaced) while the process runs it.
    pub exe_deleted: bool,
    pub exe_mode: u32,
    pub exe_size: f64,
    /// Hex SHA-256 of the executable; empty when unknown or over the size limit.
    pub sha256: String,
    pub argv: Vec<String>,
    /// The command line was longer than the limit and cut.
    pub argv_truncated: bool,
    pub cwd: String,
    pub comm: String,
    pub parent_exe: String,
    /// Process start, microseconds since the epoch (0 when unknown).
    pub start_us: f64,
    /// When the event was read, microseconds since the epoch.
    pub ts_us: f64,
    pub exit_code: i32,
    /// Its /proc entry was gone (or unreadable) before the details could be read.
    pub incomplete: bool,
}

#[napi(object)]
pub struct ProcStats {
    /// connector or poll.
    pub mode: String,
    /// Events handed over or queued (exec, exit, uid).
    pub events: f64,
    pub execs: f64,
    pub forks: f64,
    /// Events dropped because Node did not drain the queue in time.
    pub dropped_queue: f64,
    /// Times the kernel reported lost events (ENOBUFS: the socket buffer overflowed).
    pub dropped_kernel: f64,
    /// Execs whose /proc entry vanished before their details could be read.
    pub incomplete: f64,
    pub hash_cache_hits: f64,
    pub hashed: f64,
    pub queued: f64,
    /// The reader thread runs at a raised priority now (few execs a second).
    pub boosted: bool,
}

struct Shared {
    queue: Mutex<VecDeque<ProcEvent>>,
    stop: AtomicBool,
    events: AtomicU64,
    execs: AtomicU64,
    forks: AtomicU64,
    dropped_queue: AtomicU64,
    dropped_kernel: AtomicU64,
    incomplete: AtomicU64,
    hash_hits: AtomicU64,
    hashed: AtomicU64,
    max_queue: usize,
    /// Execs per second under which the reader thread's priority is raised (0: never).
    boost_below: u32,
    boosted: AtomicBool,
    on_data: Option<ThreadsafeFunction<()>>,
    armed: AtomicBool,
}

impl Shared {
    fn push(&self, ev: ProcEvent) {
        self.events.fetch_add(1, Ordering::Relaxed);
        {
            let mut q = match self.queue.lock() {
                Ok(q) => q,
                Err(p) => p.into_inner(),
            };
            if q.len() >= self.max_queue {
                self.dropped_queue.fetch_add(1, Ordering::Relaxed);
                return;
            }
            q.push_back(ev);
        }
        if let Some(f) = &self.on_data {
            if self.armed.swap(false, Ordering::AcqRel) {
                f.call(Ok(()), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
    }
}

struct Reader {
    /// Hash by (dev, inode, mtime ns, size), oldest evicted first.
    hashes: HashMap<(u64, u64, i64, u64), String>,
    hash_order: VecDeque<(u64, u64, i64, u64)>,
    hash_max_bytes: u64,
    /// Child pid → parent pid from fork events.
    forks: HashMap<u32, u32>,
    fork_order: VecDeque<u32>,
    boot_us: f64,
    ticks: f64,
}

fn now_us() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as f64).unwrap_or(0.0)
}

fn boot_time_us() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("btime ")).and_then(|l| l[6..].trim().parse::<f64>().ok()))
        .map(|s| s * 1e6)
        .unwrap_or(0.0)
}

fn read_limited(path: &str, max: usize) -> Option<(Vec<u8>, bool)> {
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::with_capacity(256);
    f.take(max as u64 + 1).read_to_end(&mut buf).ok()?;
    let cut = buf.len() > max;
    buf.truncate(max);
    Some((buf, cut))
}

/// /proc/<pid>/stat: comm is in parentheses and may hold anything, so fields are counted from
/// its closing one.
struct Stat {
    comm: String,
    ppid: u32,
    sid: u32,
    start_ticks: f64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let (b, _) = read_limited(&format!("/proc/{pid}/stat"), 4096)?;
    let s = String::from_utf8_lossy(&b);
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = s.get(close + 2..)?.split(' ').collect();
    // rest[0] = state (field 3), ppid = field 4, session = field 6, starttime = field 22
    Some(Stat {
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        start_ticks: rest.get(19)?.parse().ok()?,
    })
}

/// Real and effective uid from /proc/<pid>/status.
fn read_uids(pid: u32) -> Option<(u32, u32)> {
    let (b, _) = read_limited(&format!("/proc/{pid}/status"), 8192)?;
    let s = String::from_utf8_lossy(&b);
    let line = s.lines().find(|l| l.starts_with("Uid:"))?;
    let mut it = line[4..].split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn read_link(path: &str) -> Option<String> {
    std::fs::read_link(path).ok().map(|p| p.to_string_lossy().into_owned())
}

impl Reader {
    fn new(hash_max_bytes: u64) -> Reader {
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Reader {
            hashes: HashMap::new(),
            hash_order: VecDeque::new(),
            hash_max_bytes,
            forks: HashMap::new(),
            fork_order: VecDeque::new(),
            boot_us: boot_time_us(),
            ticks: if ticks > 0.0 { ticks } else { 100.0 },
        }
    }

    fn remember_fork(&mut self, child: u32, parent: u32) {
        if self.forks.len() >= MAX_FORKS {
            while let Some(old) = self.fork_order.pop_front() {
                if self.forks.remove(&old).is_some() {
                    break;
                }
            }
        }
        self.forks.insert(child, parent);
        self.fork_order.push_back(child);
    }

    fn hash_exe(&mut self, pid: u32, shared: &Shared) -> (String, u32, f64) {
        // the file the process runs, through /proc: also a deleted one, also one in another mount namespace
        let path = format!("/proc/{pid}/exe");
        let Ok(f) = std::fs::File::open(&path) else { return (String::new(), 0, 0.0) };
        let Ok(md) = f.metadata() else { return (String::new(), 0, 0.0) };
        let key = (md.dev(), md.ino(), md.mtime() * 1_000_000_000 + md.mtime_nsec(), md.size());
        let mode = md.mode();
        let size = md.size() as f64;
        if let Some(h) = self.hashes.get(&key) {
            shared.hash_hits.fetch_add(1, Ordering::Relaxed);
            return (h.clone(), mode, size);
        }
        if md.size() > self.hash_max_bytes {
            return (String::new(), mode, size);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut r = f;
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(_) => return (String::new(), mode, size),
            }
        }
        let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        shared.hashed.fetch_add(1, Ordering::Relaxed);
        if self.hashes.len() >= MAX_HASHES {
            if let Some(old) = self.hash_order.pop_front() {
                self.hashes.remove(&old);
            }
        }
        self.hashes.insert(key, hex.clone());
        self.hash_order.push_back(key);
        (hex, mode, size)
    }

    /// Everything /proc still says about `pid`, read at once.
    fn exec_event(&mut self, pid: u32, shared: &Shared) -> ProcEvent {
        let mut ev = ProcEvent { kind: "exec".into(), pid, ts_us: now_us(), ..Default::default() };
        if let Some(exe) = read_link(&format!("/proc/{pid}/exe")) {
            if let Some(p) = exe.strip_suffix(" (deleted)") {
                ev.exe = p.to_string();
                ev.exe_deleted = true;
            } else {
                ev.exe = exe;
            }
        } else {
            ev.incomplete = true;
        }
        if let Some((b, cut)) = read_limited(&format!("/proc/{pid}/cmdline"), MAX_CMDLINE) {
            let b = b.strip_suffix(&[0u8]).unwrap_or(&b);
            if !b.is_empty() {
                ev.argv = b.split(|c| *c == 0).take(MAX_ARGS).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            }
            ev.argv_truncated = cut || b.split(|c| *c == 0).count() > MAX_ARGS;
        }
        ev.cwd = read_link(&format!("/proc/{pid}/cwd")).unwrap_or_default();
        match read_stat(pid) {
            Some(st) => {
                ev.comm = st.comm;
                ev.ppid = st.ppid;
                ev.sid = st.sid;
                ev.start_us = self.boot_us + st.start_ticks / self.ticks * 1e6;
            }
            None => {
                ev.incomplete = true;
                ev.ppid = self.forks.get(&pid).copied().unwrap_or(0);
            }
        }
        if let Some((u, e)) = read_uids(pid) {
            ev.uid = u;
            ev.euid = e;
        }
        if !ev.exe.is_empty() {
            let (h, mode, size) = self.hash_exe(pid, shared);
            ev.sha256 = h;
            ev.exe_mode = mode;
            ev.exe_size = size;
        }
        if ev.ppid > 0 {
            ev.parent_exe = read_link(&format!("/proc/{}/exe", ev.ppid))
                .map(|p| p.strip_suffix(" (deleted)").map(str::to_string).unwrap_or(p))
                .unwrap_or_default();
        }
        if ev.incomplete {
            shared.incomplete.fetch_add(1, Ordering::Relaxed);
        }
        shared.execs.fetch_add(1, Ordering::Relaxed);
        ev
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]])).unwrap_or(0)
}

fn os_err(what: &str) -> Error {
    Error::new(Status::GenericFailure, format!("{what}: {}", std::io::Error::last_os_error()))
}

/// One connector control message (listen / ignore).
fn send_op(fd: i32, op: u32) -> bool {
    let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut m = vec![0u8; total];
    m[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    m[12..16].copy_from_slice(&0u32.to_ne_bytes());
    let c = NLMSG_HDRLEN;
    m[c..c + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m[c + 4..c + 8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m[c + 16..c + 18].copy_from_slice(&4u16.to_ne_bytes());
    m[c + 20..c + 24].copy_from_slice(&op.to_ne_bytes());
    unsafe { libc::send(fd, m.as_ptr() as *const libc::c_void, m.len(), 0) == m.len() as isize }
}

fn open_connector(rcvbuf: i32) -> Result<i32> {
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_CONNECTOR);
        if fd < 0 {
            return Err(os_err("cannot open a netlink connector socket"));
        }
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = CN_IDX_PROC;
        if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_nl>() as u32) != 0 {
            let e = os_err("cannot join the process events group (root needed)");
            libc::close(fd);
            return Err(e);
        }
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf as *const _ as *const libc::c_void, 4) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf as *const _ as *const libc::c_void, 4);
        }
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv as *const _ as *const libc::c_void, std::mem::size_of::<libc::timeval>() as u32);
        if !send_op(fd, PROC_CN_MCAST_LISTEN) {
            let e = os_err("cannot subscribe to process events");
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

fn run_connector(fd: i32, mut reader: Reader, shared: Arc<Shared>, ready: mpsc::Sender<()>) {
    // A short process is gone within a millisecond of its exec: this thread reads its /proc
    // entry in time only when it runs ahead of ordinary work, so it raises its priority (root
    // may; without root the call fails and the thread keeps the process's). But woken first on
    // every event, it preempts the very processes it watches: under an exec storm that costs
    // the machine most of its exec rate (measured: 2,500 → 940 execs/s on 2 cores). So the boost
    // holds while execs are few, and is dropped while they come faster than `boost_below` a
    // second — the details of more short processes are then lost (counted as `incomplete`),
    // never the events.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t };
    let set_boost = |on: bool| unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, if on { BOOST_NICE } else { 0 }) == 0 };
    let mut boosted = shared.boost_below > 0 && set_boost(true);
    shared.boosted.store(boosted, Ordering::Relaxed);
    let _ = ready.send(());
    let mut window_start = std::time::Instant::now();
    let mut window_execs = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::Relaxed) {
        let got = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if got < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                shared.dropped_kernel.fetch_add(1, Ordering::Relaxed);
            }
            continue; // timeout (to check stop), EINTR
        }
        let got = got as usize;
        if shared.boost_below > 0 {
            let el = window_start.elapsed();
            if el >= BOOST_WINDOW {
                let rate = window_execs as f64 / el.as_secs_f64();
                let want = rate < shared.boost_below as f64;
                if want != boosted && (set_boost(want) || !want) {
                    boosted = want;
                    shared.boosted.store(boosted, Ordering::Relaxed);
                }
                window_start = std::time::Instant::now();
                window_execs = 0;
            }
        }
        let mut off = 0usize;
        while off + NLMSG_HDRLEN <= got {
            let len = u32_at(&buf, off) as usize;
            if len < NLMSG_HDRLEN || off + len > got {
                break;
            }
            let msg = &buf[off..off + len];
            off += (len + 3) & !3;
            let c = NLMSG_HDRLEN;
            if msg.len() < c + CN_MSG_LEN + 16 || u32_at(msg, c) != CN_IDX_PROC {
                continue;
            }
            let ev = &msg[c + CN_MSG_LEN..];
            let what = u32_at(ev, 0);
            let data = &ev[16..];
            match what {
                PROC_EVENT_FORK => {
                    // parent_pid, parent_tgid, child_pid, child_tgid: a new process, not a thread
                    let (ptgid, cpid, ctgid) = (u32_at(data, 4), u32_at(data, 8), u32_at(data, 12));
                    if cpid == ctgid {
                        shared.forks.fetch_add(1, Ordering::Relaxed);
                        reader.remember_fork(ctgid, ptgid);
                    }
                }
                PROC_EVENT_EXEC => {
                    window_execs += 1;
                    let tgid = u32_at(data, 4);
                    let e = reader.exec_event(tgid, &shared);
                    shared.push(e);
                }
                PROC_EVENT_UID => {
                    let (pid, tgid, ruid, euid) = (u32_at(data, 0), u32_at(data, 4), u32_at(data, 8), u32_at(data, 12));
                    if pid == tgid {
                        let ppid = read_stat(tgid).map(|s| s.ppid).or_else(|| reader.forks.get(&tgid).copied()).unwrap_or(0);
                        let exe = read_link(&format!("/proc/{tgid}/exe")).unwrap_or_default();
                        shared.push(ProcEvent { kind: "uid".into(), pid: tgid, ppid, uid: ruid, euid, exe, ts_us: now_us(), ..Default::default() });
                    }
                }
                PROC_EVENT_EXIT => {
                    let (pid, tgid, code) = (u32_at(data, 0), u32_at(data, 4), u32_at(data, 8));
                    if pid == tgid {
                        let ppid = reader.forks.remove(&tgid).unwrap_or(0);
                        shared.push(ProcEvent { kind: "exit".into(), pid: tgid, ppid, exit_code: code as i32, ts_us: now_us(), ..Default::default() });
                    }
                }
                _ => {}
            }
        }
    }
    send_op(fd, PROC_CN_MCAST_IGNORE);
    unsafe {
        libc::close(fd);
    }
}

/// /proc polling: processes that appeared since the last look are execs, those gone are exits.
/// A process that lived between two looks is not seen: the heartbeat says this mode runs.
/// A process is known by its start time and its executable: one seen between its fork and its
/// exec (still running its parent's image) is seen again, as the exec, once its image changed.
/// An exec of the same executable again (a shell exec'ing itself) is not told apart.
fn run_poll(interval: Duration, mut reader: Reader, shared: Arc<Shared>) {
    let mut known: HashMap<u32, (f64, Option<String>)> = HashMap::new();
    let mut first = true;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut seen: HashSet<u32> = HashSet::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for ent in dir.flatten() {
                let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
                let Some(st) = read_stat(pid) else { continue };
                seen.insert(pid);
                let exe = read_link(&format!("/proc/{pid}/exe"));
                // a pid reused by a new process has another start time; an exec, another image
                if let Some((start, image)) = known.get(&pid) {
                    if *start == st.start_ticks && *image == exe {
                        continue;
                    }
                }
                known.insert(pid, (st.start_ticks, exe));
                if !first {
                    let e = reader.exec_event(pid, &shared);
                    shared.push(e);
                }
            }
        }
        let gone: Vec<u32> = known.keys().filter(|p| !seen.contains(p)).copied().collect();
        for pid in gone {
            known.remove(&pid);
            shared.push(ProcEvent { kind: "exit".into(), pid, ts_us: now_us(), ..Default::default() });
        }
        first = false;
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
    }
}

#[napi]
pub struct ProcEvents {
    shared: Arc<Shared>,
    mode: String,
    thread: Option<JoinHandle<()>>,
}

#[napi]
impl ProcEvents {
    /// Start reading process events. `mode`: "connector", "poll", or "auto" (the connector, else
    /// polling). `on_data` is called when events wait after a drain.
    #[napi(factory)]
    pub fn open(
        env: Env,
        mode: String,
        max_queue: Option<u32>,
        hash_max_bytes: Option<f64>,
        poll_ms: Option<u32>,
        boost_below: Option<u32>,
        on_data: Option<JsFunction>,
    ) -> Result<ProcEvents> {
        let on_data = match on_data {
            Some(f) => {
                let mut tsfn = env.create_threadsafe_function(&f, 0, |_: ThreadSafeCallContext<()>| Ok(Vec::<()>::new()))?;
                tsfn.unref(&env)?;
                Some(tsfn)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            stop: AtomicBool::new(false),
            events: AtomicU64::new(0),
            execs: AtomicU64::new(0),
            forks: AtomicU64::new(0),
            dropped_queue: AtomicU64::new(0),
            dropped_kernel: AtomicU64::new(0),
            incomplete: AtomicU64::new(0),
            hash_hits: AtomicU64::new(0),
            hashed: AtomicU64::new(0),
            max_queue: max_queue.unwrap_or(65_536).clamp(16, 4_194_304) as usize,
            boost_below: boost_below.unwrap_or(500),
            boosted: AtomicBool::new(false),
            on_data,
            armed: AtomicBool::new(true),
        });
        let reader = Reader::new(hash_max_bytes.unwrap_or(64.0 * 1024.0 * 1024.0).max(0.0) as u64);
        let poll = Duration::from_millis(poll_ms.unwrap_or(1000).clamp(50, 60_000) as u64);
        let fd = match mode.as_str() {
            "connector" => Some(open_connector(8 << 20)?),
            "auto" => open_connector(8 << 20).ok(),
            "poll" => None,
            m => return Err(Error::new(Status::InvalidArg, format!("mode {m:?} is not connector, poll or auto"))),
        };
        let s2 = shared.clone();
        let (tx, rx) = mpsc::channel::<()>();
        let (name, mode) = if fd.is_some() { ("cordon-proc-cn", "connector") } else { ("cordon-proc-poll", "poll") };
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || match fd {
                // ready once its priority is set, so stats() says `boosted` from the start
                Some(fd) => run_connector(fd, reader, s2, tx),
                None => {
                    let _ = tx.send(());
                    run_poll(poll, reader, s2)
                }
            })
            .map_err(|e| Error::new(Status::GenericFailure, format!("cannot start the process events thread: {e}")))?;
        let _ = rx.recv();
        Ok(ProcEvents { shared, mode: mode.into(), thread: Some(thread) })
    }

    /// Take up to `max` queued events (all when 0).
    #[napi]
    pub fn drain(&self, max: u32) -> Vec<ProcEvent> {
        let mut q = match self.shared.queue.lock() {
            Ok(q) => q,
            Err(p) => p.into_inner(),
        };
        self.shared.armed.store(true, Ordering::Release);
        let take = if max == 0 { q.len() } else { (max as usize).min(q.len()) };
        q.drain(..take).collect()
    }

    #[napi]
    pub fn stats(&self) -> ProcStats {
        let s = &self.shared;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let queued = match s.queue.lock() {
            Ok(q) => q.len(),
            Err(p) => p.into_inner().len(),
        } as f64;
        ProcStats {
            mode: self.mode.clone(),
            events: l(&s.events),
            execs: l(&s.execs),
            forks: l(&s.forks),
            dropped_queue: l(&s.dropped_queue),
            dropped_kernel: l(&s.dropped_kernel),
            incomplete: l(&s.incomplete),
            hash_cache_hits: l(&s.hash_hits),
            hashed: l(&s.hashed),
            queued,
            boosted: s.boosted.load(Ordering::Relaxed),
        }
    }

    /// Stop reading (waits for the thread, at most ~100 ms, or one poll step).
    #[napi]
    pub fn close(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

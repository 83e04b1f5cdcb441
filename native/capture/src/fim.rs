//! File integrity probing for @cordon/fim-scan: lstat + open + fstat + read + SHA-256 + lstat
//! of a batch of paths on a small pool of threads, one call per batch, the results returned as
//! one Float64Array (attributes), one buffer of digests and one of link targets.
//!
//! Why here and not in worker threads of JavaScript: a check of 100k small files is ~6
//! syscalls and one SHA-256 per file. In a JS worker each syscall also builds a Stats object
//! or a Buffer, each digest a hash object and a hex string, and every result is structured-
//! cloned back to the main thread; that overhead was several times the syscalls themselves.
//! Here a file costs its syscalls and the digest (SHA-NI where the CPU has it, chosen by sha2
//! at run time).
//!
//! The rules are those of probe.ts (which decodes the results): links are never followed
//! (lstat, O_NOFOLLOW); FIFOs, sockets and devices are never opened, and O_NONBLOCK keeps an
//! open of one swapped in after the lstat from hanging; the fstat after the open must be the
//! lstat's regular file; a file that changes while it is read (lstat before and after differ,
//! or its length is not the stat's) is read again, `attempts` times at most; errors are
//! per-path results, never a failure of the batch.

use napi::bindgen_prelude::*;
use napi::{Env, JsDeferred, JsFunction, JsObject};
use napi_derive::napi;
use sha2::{Digest, Sha256};
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// f64 fields per path in `FimProbeBatch.num` (the layout is mirrored in packages/native/src/fim.ts).
const STRIDE: usize = 12;
const F_STATUS: usize = 0; // STATUS_*
const F_ERROR: usize = 1; // ERROR_*
const F_ERRNO: usize = 2;
const F_MODE: usize = 3;
const F_UID: usize = 4;
const F_GID: usize = 5;
const F_SIZE: usize = 6;
const F_DEV: usize = 7;
const F_INO: usize = 8;
const F_MTIME_US: usize = 9;
const F_CTIME_US: usize = 10;
const F_FLAGS: usize = 11; // FLAG_*

const STATUS_OK: f64 = 0.0;
const STATUS_GONE: f64 = 1.0;
/// lstat failed with something other than ENOENT/ENOTDIR (errno in F_ERRNO).
const STATUS_UNKNOWN: f64 = 2.0;

const ERROR_READLINK: f64 = 2.0;
const ERROR_NOT_REGULAR: f64 = 3.0;
const ERROR_TOO_LARGE: f64 = 4.0;
/// open, fstat or read failed (errno in F_ERRNO).
const ERROR_UNREADABLE: f64 = 5.0;
const ERROR_UNSTABLE: f64 = 6.0;

const FLAG_SHA: f64 = 1.0;
const FLAG_LINK: f64 = 2.0;
/// trustStat: the stat matched the caller's, the digest was not computed (reuse the caller's).
const FLAG_TRUSTED: f64 = 4.0;

const CHUNK: usize = 1 << 20;
/// Fields per path in the `prev` array: size, mtime_us, ctime_us, ino, dev (NaN: no digest to reuse).
const PREV_STRIDE: usize = 5;
/// A link removed or replaced between lstat and readlink is looked at again; this bounds the
/// loop against a path flipping between a link and something else forever.
const MAX_RELOOKS: u32 = 64;

#[napi(object)]
pub struct FimProbeOptions {
    /// Threads probing batches (at most 64; 0: none, only probeSync).
    pub threads: u32,
    /// Hash regular files.
    pub hash: bool,
    /// Files larger than this are not hashed (ERROR_TOO_LARGE).
    pub max_hash_bytes: f64,
    /// Reuse the caller's digest when size, mtime, ctime, inode and device are unchanged.
    pub trust_stat: bool,
    /// Reads of a changing file before it is reported unstable (default 3).
    pub attempts: Option<u32>,
}

#[napi(object)]
pub struct FimProbeBatch {
    /// STRIDE (12) numbers per path: status, error kind, errno, mode, uid, gid, size, dev,
    /// ino, mtime_us, ctime_us, flags.
    pub num: Float64Array,
    /// 32 bytes per path: the SHA-256 when flags has 1.
    pub sha: Buffer,
    /// Link targets (raw bytes) back to back; path i's is text[text_offsets[i]..text_offsets[i+1]].
    pub text: Buffer,
    pub text_offsets: Uint32Array,
}

#[derive(Clone, Copy, Default)]
struct St {
    mode: u32,
    uid: u32,
    gid: u32,
    size: f64,
    dev: f64,
    ino: f64,
    mtime_us: f64,
    ctime_us: f64,
}

/// JavaScript's Math.round (halves toward +infinity), so the microseconds are the ones
/// `Math.round(stats.mtimeMs * 1000)` gave (baselines written before stay comparable).
fn js_round(x: f64) -> f64 {
    let f = x.floor();
    if x - f >= 0.5 {
        f + 1.0
    } else {
        f
    }
}

/// Node's `Stats.mtimeMs` is `sec * 1e3 + nsec / 1e6` in doubles; the same arithmetic here.
fn time_us(sec: i64, nsec: i64) -> f64 {
    js_round((sec as f64 * 1000.0 + nsec as f64 / 1_000_000.0) * 1000.0)
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn from_stat(s: &libc::stat) -> St {
    St {
        mode: s.st_mode,
        uid: s.st_uid,
        gid: s.st_gid,
        size: s.st_size as f64,
        dev: s.st_dev as f64,
        ino: s.st_ino as f64,
        mtime_us: time_us(s.st_mtime, s.st_mtime_nsec),
        ctime_us: time_us(s.st_ctime, s.st_ctime_nsec),
    }
}

/// Where a path is looked up: its name in an open directory (one path component to resolve
/// instead of all of them, for each of the three lookups a file takes), or the whole path
/// (`dfd` AT_FDCWD) when its directory could not be opened.
struct Loc<'a> {
    dfd: i32,
    name: &'a CStr,
}

fn lstat(p: &Loc) -> std::result::Result<St, i32> {
    let mut s: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(p.dfd, p.name.as_ptr(), &mut s, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(errno());
    }
    Ok(from_stat(&s))
}

fn fstat(fd: i32) -> std::result::Result<St, i32> {
    let mut s: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut s) } != 0 {
        return Err(errno());
    }
    Ok(from_stat(&s))
}

fn readlink(p: &Loc) -> std::result::Result<Vec<u8>, i32> {
    let mut cap = 4096;
    loop {
        let mut buf = vec![0u8; cap];
        let n = unsafe { libc::readlinkat(p.dfd, p.name.as_ptr(), buf.as_mut_ptr().cast(), cap) };
        if n < 0 {
            return Err(errno());
        }
        let n = n as usize;
        if n < cap {
            buf.truncate(n);
            return Ok(buf);
        }
        if cap >= 1 << 20 {
            return Err(libc::ENAMETOOLONG);
        }
        cap *= 4; // possibly truncated: a longer target than any Linux path, but look at all of it
    }
}

fn same_stat(a: &St, b: &St) -> bool {
    a.size == b.size
        && a.mtime_us == b.mtime_us
        && a.ctime_us == b.ctime_us
        && a.ino == b.ino
        && a.dev == b.dev
}

/// The directory of the previous path, open (O_PATH) while the paths of a batch stay in it.
struct DirCache {
    path: Vec<u8>,
    /// None: not opened, or could not be (its paths are looked up whole).
    fd: Option<Fd>,
}

impl DirCache {
    /// (directory fd, base name) for an absolute path whose directory can be opened.
    fn split<'p>(&mut self, path: &'p [u8]) -> Option<(i32, &'p [u8])> {
        let slash = path.iter().rposition(|&b| b == b'/')?;
        let (d, name) = (&path[..slash.max(1)], &path[slash + 1..]);
        if path[0] != b'/' || name.is_empty() || name == b"." || name == b".." {
            return None;
        }
        if self.path != d {
            self.path = d.to_vec();
            self.fd = CString::new(d).ok().and_then(|c| {
                let fd = unsafe {
                    libc::open(
                        c.as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    )
                };
                (fd >= 0).then_some(Fd(fd))
            });
        }
        self.fd.as_ref().map(|f| (f.0, name))
    }
}

struct Fd(i32);
impl Drop for Fd {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

#[derive(Default)]
struct Out {
    num: Vec<f64>,
    sha: Vec<u8>,
    text: Vec<u8>,
    text_off: Vec<u32>,
}

impl Out {
    fn with_capacity(n: usize) -> Out {
        let mut o = Out {
            num: Vec::with_capacity(n * STRIDE),
            sha: Vec::with_capacity(n * 32),
            text: Vec::new(),
            text_off: Vec::with_capacity(n + 1),
        };
        o.text_off.push(0);
        o
    }

    fn push(
        &mut self,
        status: f64,
        error: f64,
        err_no: i32,
        st: Option<&St>,
        flags: f64,
        sha: Option<&[u8]>,
    ) {
        let z = St::default();
        let s = st.unwrap_or(&z);
        let mut r = [0f64; STRIDE];
        r[F_STATUS] = status;
        r[F_ERROR] = error;
        r[F_ERRNO] = err_no as f64;
        r[F_MODE] = s.mode as f64;
        r[F_UID] = s.uid as f64;
        r[F_GID] = s.gid as f64;
        r[F_SIZE] = s.size;
        r[F_DEV] = s.dev;
        r[F_INO] = s.ino;
        r[F_MTIME_US] = s.mtime_us;
        r[F_CTIME_US] = s.ctime_us;
        r[F_FLAGS] = flags;
        self.num.extend_from_slice(&r);
        match sha {
            Some(d) => self.sha.extend_from_slice(d),
            None => self.sha.extend_from_slice(&[0u8; 32]),
        }
        self.text_off.push(self.text.len() as u32);
    }

    fn ok(&mut self, st: &St, error: f64, err_no: i32) {
        self.push(STATUS_OK, error, err_no, Some(st), 0.0, None);
    }

    fn into_batch(self) -> FimProbeBatch {
        FimProbeBatch {
            num: Float64Array::new(self.num),
            sha: self.sha.into(),
            text: self.text.into(),
            text_offsets: Uint32Array::new(self.text_off),
        }
    }
}

struct Prober {
    hash: bool,
    max: f64,
    trust: bool,
    attempts: u32,
    /// O_NOATIME until the kernel refuses it (EPERM: a file we do not own, not root).
    no_atime: AtomicBool,
}

impl Prober {
    fn open(&self, p: &Loc) -> std::result::Result<Fd, i32> {
        let base = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        if self.no_atime.load(Ordering::Relaxed) {
            let fd = unsafe { libc::openat(p.dfd, p.name.as_ptr(), base | libc::O_NOATIME) };
            if fd >= 0 {
                return Ok(Fd(fd));
            }
            let e = errno();
            if e != libc::EPERM {
                return Err(e);
            }
            self.no_atime.store(false, Ordering::Relaxed);
        }
        let fd = unsafe { libc::openat(p.dfd, p.name.as_ptr(), base) };
        if fd < 0 {
            return Err(errno());
        }
        Ok(Fd(fd))
    }

    /// Ok(None): the file changed under us (re-stat and read again).
    fn hash_once(
        &self,
        p: &Loc,
        full: &CStr,
        st: &St,
        attempt: u32,
        buf: &mut [u8],
        hook: &mut dyn FnMut(&CStr, u32),
    ) -> std::result::Result<Option<[u8; 32]>, i32> {
        let fd = self.open(p)?;
        let f = fstat(fd.0)?;
        if f.mode & libc::S_IFMT != libc::S_IFREG || f.ino != st.ino || f.dev != st.dev {
            return Ok(None); // replaced before the open
        }
        let mut h = Sha256::new();
        let mut total: u64 = 0;
        loop {
            let n = unsafe { libc::read(fd.0, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = errno();
                if e == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total as f64 > self.max {
                return Ok(None); // grew past the cap while we read: the re-stat decides
            }
            h.update(&buf[..n]);
            hook(full, attempt);
            // A short read of a regular file is its end at that moment; the lstat after catches growth.
            if n < buf.len() && total as f64 == st.size {
                break;
            }
        }
        let d: [u8; 32] = h.finalize().into();
        Ok(if total as f64 == st.size {
            Some(d)
        } else {
            None
        })
    }

    fn probe_one(
        &self,
        dir: &mut DirCache,
        path: &[u8],
        prev: Option<&[f64]>,
        buf: &mut [u8],
        hook: &mut dyn FnMut(&CStr, u32),
        out: &mut Out,
    ) {
        let c = match CString::new(path) {
            Ok(c) => c,
            Err(_) => return out.push(STATUS_UNKNOWN, 0.0, libc::EINVAL, None, 0.0, None),
        };
        let name_at;
        let loc = match dir.split(path) {
            Some((dfd, name)) => {
                name_at = CString::new(name).unwrap_or_default();
                Loc {
                    dfd,
                    name: &name_at,
                }
            }
            None => Loc {
                dfd: libc::AT_FDCWD,
                name: &c,
            },
        };
        let mut attempt: u32 = 0;
        let mut relooks: u32 = 0;
        loop {
            attempt += 1;
            let st = match lstat(&loc) {
                Ok(s) => s,
                Err(e) if e == libc::ENOENT || e == libc::ENOTDIR => {
                    return out.push(STATUS_GONE, 0.0, 0, None, 0.0, None)
                }
                Err(e) => return out.push(STATUS_UNKNOWN, 0.0, e, None, 0.0, None),
            };
            let kind = st.mode & libc::S_IFMT;
            if kind == libc::S_IFLNK {
                match readlink(&loc) {
                    Ok(t) => {
                        out.text.extend_from_slice(&t);
                        return out.push(STATUS_OK, 0.0, 0, Some(&st), FLAG_LINK, None);
                    }
                    // removed, or no longer a link, between lstat and readlink: look again
                    Err(e) if (e == libc::ENOENT || e == libc::EINVAL) && relooks < MAX_RELOOKS => {
                        relooks += 1;
                        continue;
                    }
                    Err(e) => return out.ok(&st, ERROR_READLINK, e),
                }
            }
            if kind != libc::S_IFREG && kind != libc::S_IFDIR {
                return out.ok(&st, ERROR_NOT_REGULAR, 0);
            }
            if kind != libc::S_IFREG || !self.hash {
                return out.ok(&st, 0.0, 0);
            }
            if st.size > self.max {
                return out.ok(&st, ERROR_TOO_LARGE, 0);
            }
            if self.trust {
                if let Some(p) = prev {
                    let was = St {
                        mode: 0,
                        uid: 0,
                        gid: 0,
                        size: p[0],
                        mtime_us: p[1],
                        ctime_us: p[2],
                        ino: p[3],
                        dev: p[4],
                    };
                    if same_stat(&st, &was) {
                        return out.push(STATUS_OK, 0.0, 0, Some(&st), FLAG_TRUSTED, None);
                    }
                }
            }
            match self.hash_once(&loc, &c, &st, attempt, buf, hook) {
                Err(e) => {
                    // Gone, or replaced by a link/dir/special file between lstat and open: look again.
                    let retry = matches!(
                        e,
                        libc::ENOENT | libc::ELOOP | libc::EISDIR | libc::ENXIO | libc::EAGAIN
                    );
                    if !(retry && attempt < self.attempts) {
                        return out.ok(&st, ERROR_UNREADABLE, e);
                    }
                    continue;
                }
                Ok(Some(d)) => {
                    if let Ok(after) = lstat(&loc) {
                        if same_stat(&after, &st) {
                            return out.push(STATUS_OK, 0.0, 0, Some(&st), FLAG_SHA, Some(&d));
                        }
                    }
                }
                Ok(None) => {}
            }
            if attempt >= self.attempts {
                return out.ok(&st, ERROR_UNSTABLE, 0);
            }
        }
    }

    fn probe_batch(
        &self,
        paths: &str,
        prev: Option<&[f64]>,
        buf: &mut [u8],
        hook: &mut dyn FnMut(&CStr, u32),
    ) -> Out {
        let n = if paths.is_empty() {
            0
        } else {
            paths.split('\0').count()
        };
        let mut out = Out::with_capacity(n);
        if n == 0 {
            return out;
        }
        let mut dir = DirCache {
            path: Vec::new(),
            fd: None,
        };
        for (i, p) in paths.split('\0').enumerate() {
            let pv = prev
                .and_then(|a| a.get(i * PREV_STRIDE..(i + 1) * PREV_STRIDE))
                .filter(|v| !v[0].is_nan());
            self.probe_one(&mut dir, p.as_bytes(), pv, buf, hook, &mut out);
        }
        out
    }
}

type Resolve = Box<dyn FnOnce(Env) -> Result<FimProbeBatch> + Send>;

struct Job {
    paths: String,
    prev: Option<Vec<f64>>,
    deferred: JsDeferred<FimProbeBatch, Resolve>,
}

/// A pool of probing threads. Batches queue in order and are taken by whichever thread is free.
#[napi]
pub struct FimProber {
    prober: Arc<Prober>,
    tx: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

fn check_prev(paths: &str, prev: &Option<Float64Array>) -> Result<()> {
    if let Some(p) = prev {
        let n = if paths.is_empty() {
            0
        } else {
            paths.split('\0').count()
        };
        if p.len() != n * PREV_STRIDE {
            return Err(Error::new(
                Status::InvalidArg,
                format!(
                    "prev has {} numbers for {n} paths; {PREV_STRIDE} per path are needed",
                    p.len()
                ),
            ));
        }
    }
    Ok(())
}

#[napi]
impl FimProber {
    #[napi(factory)]
    pub fn open(opts: FimProbeOptions) -> Result<FimProber> {
        if !(opts.max_hash_bytes >= 0.0) {
            return Err(Error::new(
                Status::InvalidArg,
                "maxHashBytes must be a number >= 0",
            ));
        }
        let prober = Arc::new(Prober {
            hash: opts.hash,
            max: opts.max_hash_bytes,
            trust: opts.trust_stat,
            attempts: opts.attempts.unwrap_or(3).max(1),
            no_atime: AtomicBool::new(true),
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..opts.threads.min(64) {
            let rx = rx.clone();
            let prober = prober.clone();
            let t = std::thread::Builder::new()
                .name(format!("cordon-fim-{i}"))
                .spawn(move || {
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        // ends when the prober is closed (the sender dropped)
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(p) => p.into_inner().recv(),
                        };
                        let Ok(job) = job else { break };
                        let out = prober.probe_batch(
                            &job.paths,
                            job.prev.as_deref(),
                            &mut buf,
                            &mut |_, _| {},
                        );
                        job.deferred
                            .resolve(Box::new(move |_| Ok(out.into_batch())));
                    }
                })
                .map_err(|e| {
                    Error::new(
                        Status::GenericFailure,
                        format!("cannot start a probing thread: {e}"),
                    )
                })?;
            threads.push(t);
        }
        Ok(FimProber {
            prober,
            tx: Some(tx),
            threads,
        })
    }

    /// Probe `paths` (joined by NUL) on a pool thread. `prev`: PREV_STRIDE numbers per path
    /// (size, mtime_us, ctime_us, ino, dev; NaN size = none), used when trustStat is on.
    #[napi(ts_return_type = "Promise<FimProbeBatch>")]
    pub fn probe(&self, env: Env, paths: String, prev: Option<Float64Array>) -> Result<JsObject> {
        check_prev(&paths, &prev)?;
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Error::new(Status::GenericFailure, "the prober is closed"))?;
        let (deferred, promise) = env.create_deferred::<FimProbeBatch, Resolve>()?;
        let prev = prev.map(|p| p.to_vec());
        tx.send(Job {
            paths,
            prev,
            deferred,
        })
        .map_err(|_| Error::new(Status::GenericFailure, "the probing threads have ended"))?;
        Ok(promise)
    }

    /// The same on the calling thread, calling `onChunk(path, attempt)` after each chunk a
    /// file's hashing reads (tests change files there to exercise the re-read rules).
    #[napi(
        ts_args_type = "paths: string, prev?: Float64Array | null, onChunk?: ((path: string, attempt: number) => void) | null"
    )]
    pub fn probe_sync(
        &self,
        env: Env,
        paths: String,
        prev: Option<Float64Array>,
        on_chunk: Option<JsFunction>,
    ) -> Result<FimProbeBatch> {
        check_prev(&paths, &prev)?;
        let mut failed: Option<Error> = None;
        let mut buf = vec![0u8; CHUNK];
        let out = {
            let mut hook = |p: &CStr, attempt: u32| {
                let Some(f) = on_chunk.as_ref() else { return };
                if failed.is_some() {
                    return;
                }
                let r = env
                    .create_string(&p.to_string_lossy())
                    .and_then(|s| Ok((s, env.create_uint32(attempt)?)))
                    .and_then(|(s, a)| f.call(None, &[s.into_unknown(), a.into_unknown()]));
                if let Err(e) = r {
                    failed = Some(e);
                }
            };
            self.prober
                .probe_batch(&paths, prev.as_deref(), &mut buf, &mut hook)
        };
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(out.into_batch())
    }

    /// Batches already queued are finished; then the threads end.
    #[napi]
    pub fn close(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for FimProber {
    fn drop(&mut self) {
        self.close();
    }
}

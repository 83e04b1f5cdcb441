//! Live capture for the watchdog: an AF_PACKET socket on an interface (the host's bridge, in
//! promiscuous mode, or a mirror port), read by a thread of its own into a bounded buffer that
//! Node drains in batches (one call per batch).
//!
//! Why one socket on the bridge and not one per bridge port: a flow's frames enter at two
//! ports (request at the client's, reply at the server's); read by two threads, a reply could
//! reach Node before its request whenever one thread is scheduled late, and the flow's stream
//! would be lost. One socket's queue is filled in the order the bridge handles the frames, so
//! a reply (caused by the request) always queues after it. It also covers ports added later
//! (a VM powered on after the watchdog started).
//! The socket can be opened inside another network namespace (`netns`, a name under
//! /run/netns): only the capture thread enters it, so the rest of the process keeps its own
//! network (the lab's Kafka on the host's loopback).
//!
//! Frames the interface *sent* (PACKET_OUTGOING: the host's own traffic through the bridge)
//! are skipped: VM traffic is what the watchdog inspects.

mod fim;
mod nft;
mod proc;
mod sign;
mod sign_core;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadSafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsFunction};
use napi_derive::napi;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;
const SOL_PACKET: i32 = 263;
const PACKET_STATISTICS: i32 = 6;
const SIOCGSTAMP: libc::c_ulong = 0x8906;
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_MR_PROMISC: u16 = 1;

struct Ring {
    data: Vec<u8>,
    offsets: Vec<u32>,
    ts: Vec<f64>,
    orig: Vec<u32>,
}

struct Shared {
    ring: Mutex<Ring>,
    stop: AtomicBool,
    received: AtomicU64,
    dropped_ring: AtomicU64,
    dropped_kernel: AtomicU64,
    max_bytes: usize,
    max_frames: usize,
    /// Called (on the JS thread) when a frame lands after a drain: Node drains at once instead
    /// of on a timer. Armed by each drain, so a burst costs one call, not one per frame.
    on_data: Option<ThreadsafeFunction<()>>,
    armed: AtomicBool,
}

#[napi(object)]
pub struct CaptureBatch {
    /// Frames back to back.
    pub data: Buffer,
    /// n+1 offsets into data.
    pub offsets: Uint32Array,
    /// Capture time of each frame, microseconds since the epoch.
    pub ts_us: Float64Array,
    /// Length of each frame on the wire (≥ its captured length).
    pub orig_len: Uint32Array,
}

#[napi(object)]
pub struct CaptureStats {
    pub received: f64,
    /// Frames the kernel dropped because the socket buffer was full.
    pub dropped_kernel: f64,
    /// Frames dropped because Node did not drain fast enough.
    pub dropped_ring: f64,
}

#[napi]
pub struct Capture {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn os_err(what: &str) -> Error {
    Error::new(Status::GenericFailure, format!("{what}: {}", std::io::Error::last_os_error()))
}

fn open_socket(iface: &str, netns: Option<&str>, rcvbuf: i32, promisc: bool) -> Result<i32> {
    unsafe {
        if let Some(ns) = netns {
            if ns.is_empty() || ns.contains('/') || ns.len() > 64 {
                return Err(Error::new(Status::InvalidArg, format!("netns {ns:?} is not a plain name")));
            }
            let path = CString::new(format!("/run/netns/{ns}")).map_err(|_| Error::new(Status::InvalidArg, "netns name"))?;
            let nsfd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if nsfd < 0 {
                return Err(os_err(&format!("cannot open network namespace {ns}")));
            }
            let rc = libc::setns(nsfd, libc::CLONE_NEWNET);
            libc::close(nsfd);
            if rc != 0 {
                return Err(os_err(&format!("cannot enter network namespace {ns} (root needed)")));
            }
        }
        let name = CString::new(iface).map_err(|_| Error::new(Status::InvalidArg, "interface name"))?;
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            return Err(os_err(&format!("no interface {iface}")));
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, (ETH_P_ALL).to_be() as i32);
        if fd < 0 {
            return Err(os_err("cannot open an AF_PACKET socket (root or CAP_NET_RAW needed)"));
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        if libc::bind(fd, &sll as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_ll>() as u32) != 0 {
            libc::close(fd);
            return Err(os_err(&format!("cannot bind to {iface}")));
        }
        if promisc {
            // A membership, not `ip link set promisc on`: the kernel drops it with the socket,
            // so a crashed watchdog leaves the interface as it found it. On a bridge it makes
            // the bridge pass every frame it forwards up to this socket too.
            let mut mreq: libc::packet_mreq = std::mem::zeroed();
            mreq.mr_ifindex = ifindex as i32;
            mreq.mr_type = PACKET_MR_PROMISC;
            if libc::setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq as *const _ as *const libc::c_void, std::mem::size_of::<libc::packet_mreq>() as u32) != 0 {
                let e = os_err(&format!("cannot put {iface} in promiscuous mode"));
                libc::close(fd);
                return Err(e);
            }
        }
        // a big receive buffer absorbs bursts while Node is busy; FORCE works as root
        let sz = rcvbuf;
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &sz as *const _ as *const libc::c_void, 4) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &sz as *const _ as *const libc::c_void, 4);
        }
        // wake up regularly to notice close()
        let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv as *const _ as *const libc::c_void, std::mem::size_of::<libc::timeval>() as u32);
        Ok(fd)
    }
}

fn kernel_drops(fd: i32) -> u64 {
    // tpacket_stats { tp_packets, tp_drops }: reading resets them, so the caller accumulates
    let mut st = [0u32; 2];
    let mut len = 8u32;
    unsafe {
        if libc::getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, st.as_mut_ptr() as *mut libc::c_void, &mut len) != 0 {
            return 0;
        }
    }
    st[1] as u64
}

fn run(fd: i32, snaplen: usize, shared: Arc<Shared>) {
    let mut buf = vec![0u8; snaplen.max(64)];
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        let got = unsafe {
            libc::recvfrom(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), libc::MSG_TRUNC, &mut sll as *mut _ as *mut libc::sockaddr, &mut alen)
        };
        if got < 0 {
            continue; // timeout (to check stop) or EINTR
        }
        if sll.sll_pkttype == PACKET_OUTGOING {
            continue;
        }
        let orig = got as usize;
        let caplen = orig.min(buf.len());
        // The kernel's receive time, not ours: frames of one flow arrive at different ports
        // and are read by different threads, so only kernel timestamps give their wire order.
        let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
        let ts = if unsafe { libc::ioctl(fd, SIOCGSTAMP, &mut tv as *mut libc::timeval) } == 0 {
            tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64
        } else {
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as f64).unwrap_or(0.0)
        };
        shared.received.fetch_add(1, Ordering::Relaxed);
        {
            let mut r = match shared.ring.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            if r.ts.len() >= shared.max_frames || r.data.len() + caplen > shared.max_bytes {
                shared.dropped_ring.fetch_add(1, Ordering::Relaxed);
            } else {
                r.data.extend_from_slice(&buf[..caplen]);
                let end = r.data.len() as u32;
                r.offsets.push(end);
                r.ts.push(ts);
                r.orig.push(orig as u32);
            }
        }
        if let Some(f) = &shared.on_data {
            if shared.armed.swap(false, Ordering::AcqRel) {
                f.call(Ok(()), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }
        n += 1;
        if n % 4096 == 0 {
            shared.dropped_kernel.fetch_add(kernel_drops(fd), Ordering::Relaxed);
        }
    }
    shared.dropped_kernel.fetch_add(kernel_drops(fd), Ordering::Relaxed);
    unsafe {
        libc::close(fd);
    }
}

#[napi]
impl Capture {
    /// Open a capture on `iface` (inside network namespace `netns` when given; promiscuous
    /// unless `promisc` is false) and start reading. `on_data` is called when frames wait
    /// after a drain.
    #[napi(factory)]
    pub fn open(
        env: Env,
        iface: String,
        netns: Option<String>,
        snaplen: Option<u32>,
        max_buffered_frames: Option<u32>,
        promisc: Option<bool>,
        on_data: Option<JsFunction>,
    ) -> Result<Capture> {
        let on_data = match on_data {
            Some(f) => {
                let mut tsfn = env.create_threadsafe_function(&f, 0, |_: ThreadSafeCallContext<()>| Ok(Vec::<()>::new()))?;
                // the capture alone must not keep the process alive
                tsfn.unref(&env)?;
                Some(tsfn)
            }
            None => None,
        };
        let snaplen = snaplen.unwrap_or(65_535).clamp(64, 262_144) as usize;
        let max_frames = max_buffered_frames.unwrap_or(262_144).clamp(1024, 4_194_304) as usize;
        let shared = Arc::new(Shared {
            ring: Mutex::new(Ring { data: Vec::with_capacity(1 << 20), offsets: vec![0], ts: Vec::new(), orig: Vec::new() }),
            stop: AtomicBool::new(false),
            received: AtomicU64::new(0),
            dropped_ring: AtomicU64::new(0),
            dropped_kernel: AtomicU64::new(0),
            max_bytes: 256 << 20,
            max_frames,
            on_data,
            armed: AtomicBool::new(true),
        });
        let (tx, rx) = mpsc::channel::<Result<()>>();
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("cordon-capture-{iface}"))
            .spawn(move || match open_socket(&iface, netns.as_deref(), 32 << 20, promisc.unwrap_or(true)) {
                Ok(fd) => {
                    let _ = tx.send(Ok(()));
                    run(fd, snaplen, s2);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| Error::new(Status::GenericFailure, format!("cannot start the capture thread: {e}")))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(Capture { shared, thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(Error::new(Status::GenericFailure, "the capture thread ended before opening its socket")),
        }
    }

    /// Take up to `max` buffered frames (all when 0).
    #[napi]
    pub fn drain(&self, max: u32) -> CaptureBatch {
        let mut r = match self.shared.ring.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        // under the lock: a frame pushed after this drain finds the flag set and calls on_data
        self.shared.armed.store(true, Ordering::Release);
        let n = r.ts.len();
        let take = if max == 0 { n } else { (max as usize).min(n) };
        if take == n {
            let data = std::mem::replace(&mut r.data, Vec::with_capacity(1 << 20));
            let offsets = std::mem::replace(&mut r.offsets, vec![0]);
            let ts = std::mem::take(&mut r.ts);
            let orig = std::mem::take(&mut r.orig);
            return CaptureBatch { data: data.into(), offsets: offsets.into(), ts_us: ts.into(), orig_len: orig.into() };
        }
        let cut = r.offsets[take] as usize;
        let data: Vec<u8> = r.data.drain(..cut).collect();
        let mut offsets: Vec<u32> = r.offsets.drain(..take).collect();
        offsets.push(cut as u32);
        for o in r.offsets.iter_mut() {
            *o -= cut as u32;
        }
        r.offsets[0] = 0;
        let ts: Vec<f64> = r.ts.drain(..take).collect();
        let orig: Vec<u32> = r.orig.drain(..take).collect();
        CaptureBatch { data: data.into(), offsets: offsets.into(), ts_us: ts.into(), orig_len: orig.into() }
    }

    #[napi]
    pub fn stats(&self) -> CaptureStats {
        CaptureStats {
            received: self.shared.received.load(Ordering::Relaxed) as f64,
            dropped_kernel: self.shared.dropped_kernel.load(Ordering::Relaxed) as f64,
            dropped_ring: self.shared.dropped_ring.load(Ordering::Relaxed) as f64,
        }
    }

    /// Stop reading and close the socket (waits for the thread, at most ~100 ms).
    #[napi]
    pub fn close(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

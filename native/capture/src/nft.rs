//! A long-lived nftables writer: libnftables (the library behind the `nft` command, from
//! Debian's libnftables1, which the nftables package installs) loaded at run time, one context
//! per session, owned by a thread of its own.
//!
//! Why not spawn `nft -f -` per change: a process start costs 7–14 ms, which alone is more
//! than the whole detection-to-block budget. Through the library the same script applies in
//! ~0.1 ms, as one transaction, with the same syntax and the same error messages.
//!
//! Why a thread: the session may live in another network namespace (the lab's host). Only that
//! thread enters it — for good, so libnftables' netlink socket, whenever it is (re)opened, is
//! in the right namespace — and the rest of the process keeps its own network.
//!
//! Why dlopen and not a link-time dependency: the capture half of this addon must load on
//! hosts without nftables; `NftSession.open` reports the missing library as an error instead.

use napi::bindgen_prelude::*;
use napi::{Env, JsDeferred, JsObject};
use napi_derive::napi;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// libnftables output flags (nftables.h): JSON listings, numeric times.
const NFT_CTX_OUTPUT_JSON: u32 = 1 << 4;

#[allow(non_camel_case_types)]
type nft_ctx = c_void;

struct Lib {
    ctx_new: unsafe extern "C" fn(u32) -> *mut nft_ctx,
    ctx_free: unsafe extern "C" fn(*mut nft_ctx),
    buffer_output: unsafe extern "C" fn(*mut nft_ctx) -> c_int,
    buffer_error: unsafe extern "C" fn(*mut nft_ctx) -> c_int,
    output_buffer: unsafe extern "C" fn(*mut nft_ctx) -> *const c_char,
    error_buffer: unsafe extern "C" fn(*mut nft_ctx) -> *const c_char,
    output_set_flags: unsafe extern "C" fn(*mut nft_ctx, u32),
    run_cmd: unsafe extern "C" fn(*mut nft_ctx, *const c_char) -> c_int,
}

fn load_lib() -> std::result::Result<Lib, String> {
    unsafe {
        let mut handle = std::ptr::null_mut();
        for name in [c"libnftables.so.1", c"libnftables.so"] {
            handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if !handle.is_null() {
                break;
            }
        }
        if handle.is_null() {
            return Err("libnftables is not installed (Debian: apt-get install nftables)".into());
        }
        macro_rules! sym {
            ($name:literal) => {{
                let p = libc::dlsym(handle, concat!($name, "\0").as_ptr() as *const c_char);
                if p.is_null() {
                    return Err(format!("libnftables lacks {}", $name));
                }
                std::mem::transmute::<*mut c_void, _>(p)
            }};
        }
        // The handle is never closed: the library stays mapped for the life of the process.
        Ok(Lib {
            ctx_new: sym!("nft_ctx_new"),
            ctx_free: sym!("nft_ctx_free"),
            buffer_output: sym!("nft_ctx_buffer_output"),
            buffer_error: sym!("nft_ctx_buffer_error"),
            output_buffer: sym!("nft_ctx_get_output_buffer"),
            error_buffer: sym!("nft_ctx_get_error_buffer"),
            output_set_flags: sym!("nft_ctx_output_set_flags"),
            run_cmd: sym!("nft_run_cmd_from_buffer"),
        })
    }
}

/// The thread's context; never leaves its thread.
struct Ctx {
    lib: Lib,
    plain: *mut nft_ctx,
    json: *mut nft_ctx,
}

impl Ctx {
    fn new(lib: Lib) -> std::result::Result<Ctx, String> {
        unsafe {
            let plain = (lib.ctx_new)(0);
            let json = (lib.ctx_new)(0);
            if plain.is_null() || json.is_null() {
                return Err("nft_ctx_new failed".into());
            }
            for c in [plain, json] {
                (lib.buffer_output)(c);
                (lib.buffer_error)(c);
            }
            (lib.output_set_flags)(json, NFT_CTX_OUTPUT_JSON);
            Ok(Ctx { lib, plain, json })
        }
    }

    fn run(&self, script: &str, json: bool) -> std::result::Result<String, String> {
        let c = if json { self.json } else { self.plain };
        let script = CString::new(script).map_err(|_| "the script contains a NUL byte".to_string())?;
        unsafe {
            let rc = (self.lib.run_cmd)(c, script.as_ptr());
            // the buffers are reset by the next call: copy them out now
            let out = CStr::from_ptr((self.lib.output_buffer)(c)).to_string_lossy().into_owned();
            let err = CStr::from_ptr((self.lib.error_buffer)(c)).to_string_lossy().into_owned();
            if rc == 0 {
                Ok(out)
            } else {
                Err(if err.trim().is_empty() { format!("nft failed (code {rc})") } else { err.trim().to_string() })
            }
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        unsafe {
            (self.lib.ctx_free)(self.plain);
            (self.lib.ctx_free)(self.json);
        }
    }
}

type Resolve = Box<dyn FnOnce(Env) -> Result<String> + Send>;

struct Job {
    script: String,
    json: bool,
    deferred: JsDeferred<String, Resolve>,
}

#[napi]
pub struct NftSession {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

fn enter_netns(ns: &str) -> std::result::Result<(), String> {
    if ns.is_empty() || ns.contains('/') || ns.len() > 64 {
        return Err(format!("netns {ns:?} is not a plain name"));
    }
    let path = CString::new(format!("/run/netns/{ns}")).map_err(|_| "netns name".to_string())?;
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(format!("cannot open network namespace {ns}: {}", std::io::Error::last_os_error()));
        }
        let rc = libc::setns(fd, libc::CLONE_NEWNET);
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(format!("cannot enter network namespace {ns} (root needed): {e}"));
        }
    }
    Ok(())
}

#[napi]
impl NftSession {
    /// Start a session (in network namespace `netns` when given). Fails when libnftables is
    /// missing or the namespace cannot be entered.
    #[napi(factory)]
    pub fn open(netns: Option<String>) -> Result<NftSession> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("cordon-nft".into())
            .spawn(move || {
                let ctx = netns
                    .as_deref()
                    .map_or(Ok(()), enter_netns)
                    .and_then(|()| load_lib())
                    .and_then(Ctx::new);
                let ctx = match ctx {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // ends when the session is closed (the sender dropped)
                for job in rx {
                    match ctx.run(&job.script, job.json) {
                        Ok(out) => job.deferred.resolve(Box::new(move |_| Ok(out))),
                        Err(e) => job.deferred.reject(Error::new(Status::GenericFailure, e)),
                    }
                }
            })
            .map_err(|e| Error::new(Status::GenericFailure, format!("cannot start the nft thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(NftSession { tx: Some(tx), thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(Error::new(Status::GenericFailure, e))
            }
            Err(_) => Err(Error::new(Status::GenericFailure, "the nft thread ended before it was ready")),
        }
    }

    /// Run an nft script as one transaction; resolves with what nft printed (JSON when `json`),
    /// rejects with nft's own error message.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn run(&self, env: Env, script: String, json: Option<bool>) -> Result<JsObject> {
        let (deferred, promise) = env.create_deferred::<String, Resolve>()?;
        let tx = self.tx.as_ref().ok_or_else(|| Error::new(Status::GenericFailure, "the nft session is closed"))?;
        tx.send(Job { script, json: json.unwrap_or(false), deferred })
            .map_err(|_| Error::new(Status::GenericFailure, "the nft thread has ended"))?;
        Ok(promise)
    }

    /// Finish queued scripts, then end the thread.
    #[napi]
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

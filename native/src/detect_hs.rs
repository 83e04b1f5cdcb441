//! Hyperscan (or Vectorscan, same C API) literal multi-pattern matching, behind the
//! `hyperscan` cargo feature: a thin FFI over `hs_compile_lit_multi` and `hs_scan`, used as the
//! prefilter's matcher when present and as the benchmark's physical-limit baseline.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::ptr;

#[repr(C)]
struct HsCompileError {
    message: *const c_char,
    expression: c_int,
}

type MatchHandler = unsafe extern "C" fn(id: c_uint, from: c_ulonglong, to: c_ulonglong, flags: c_uint, ctx: *mut c_void) -> c_int;

#[link(name = "hs")]
extern "C" {
    fn hs_compile_lit_multi(
        expressions: *const *const c_char,
        flags: *const c_uint,
        ids: *const c_uint,
        lens: *const usize,
        elements: c_uint,
        mode: c_uint,
        platform: *const c_void,
        db: *mut *mut c_void,
        error: *mut *mut HsCompileError,
    ) -> c_int;
    fn hs_free_compile_error(error: *mut HsCompileError) -> c_int;
    fn hs_free_database(db: *mut c_void) -> c_int;
    fn hs_database_size(db: *const c_void, size: *mut usize) -> c_int;
    fn hs_alloc_scratch(db: *const c_void, scratch: *mut *mut c_void) -> c_int;
    fn hs_free_scratch(scratch: *mut c_void) -> c_int;
    fn hs_clone_scratch(src: *const c_void, dest: *mut *mut c_void) -> c_int;
    fn hs_scan(db: *const c_void, data: *const c_char, length: c_uint, flags: c_uint, scratch: *mut c_void, on_event: MatchHandler, ctx: *mut c_void) -> c_int;
    fn hs_open_stream(db: *const c_void, flags: c_uint, stream: *mut *mut c_void) -> c_int;
    fn hs_scan_stream(stream: *mut c_void, data: *const c_char, length: c_uint, flags: c_uint, scratch: *mut c_void, on_event: MatchHandler, ctx: *mut c_void) -> c_int;
    fn hs_close_stream(stream: *mut c_void, scratch: *mut c_void, on_event: Option<MatchHandler>, ctx: *mut c_void) -> c_int;
    fn hs_stream_size(db: *const c_void, size: *mut usize) -> c_int;
    #[cfg(feature = "node")]
    fn hs_set_allocator(alloc: unsafe extern "C" fn(usize) -> *mut c_void, free: unsafe extern "C" fn(*mut c_void)) -> c_int;
}

const HS_FLAG_CASELESS: c_uint = 1;
const HS_FLAG_SINGLEMATCH: c_uint = 8;
const HS_MODE_BLOCK: c_uint = 1;
const HS_MODE_STREAM: c_uint = 2;
const HS_INVALID: c_int = -1;

/// Hyperscan's own allocations (stream state, scratch, databases) from the Rust allocator's
/// heap when that is mimalloc (the N-API build): a flow's stream state is allocated when its
/// scan starts and freed with the flow, and glibc's malloc and free of these were ~1.3 % of the
/// engine's time on the bench capture. Set once, before libhs allocates anything (every
/// allocation follows a database build, which calls this first); libhs holds one allocator
/// for the process, and this addon is its only user.
fn use_rust_heap() {
    #[cfg(feature = "node")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| unsafe {
            hs_set_allocator(libmimalloc_sys::mi_malloc, libmimalloc_sys::mi_free);
        });
    }
}

/// A compiled literal database. Immutable after build; scanning needs a `Scratch`.
pub struct HsDb {
    db: *mut c_void,
    /// Unique in the process (a freed database's address may be reused, its id is not): what
    /// a `Scratch` records it was fitted to.
    id: u32,
}

static NEXT_DB_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

// The database is read-only after compilation; Hyperscan allows sharing it between threads.
unsafe impl Send for HsDb {}
unsafe impl Sync for HsDb {}

impl Drop for HsDb {
    fn drop(&mut self) {
        unsafe {
            hs_free_database(self.db);
        }
    }
}

impl HsDb {
    /// Literals, each `(bytes, caseless)`, reported with their index as id: once per scan
    /// (SINGLEMATCH) when `once`, else at every occurrence.
    pub fn build(pats: &[(&[u8], bool)], once: bool) -> Result<HsDb, String> {
        Self::build_mode(pats, once, HS_MODE_BLOCK)
    }

    /// A streaming database: data arrives in pieces (`HsStream`) and a literal spanning two
    /// pieces is found as if they were one buffer. Every occurrence is reported.
    pub fn build_stream(pats: &[(&[u8], bool)]) -> Result<HsDb, String> {
        Self::build_mode(pats, false, HS_MODE_STREAM)
    }

    fn build_mode(pats: &[(&[u8], bool)], once: bool, mode: c_uint) -> Result<HsDb, String> {
        if pats.is_empty() || pats.iter().any(|p| p.0.is_empty()) {
            return Err("empty pattern set or empty pattern".into());
        }
        use_rust_heap();
        let ptrs: Vec<*const c_char> = pats.iter().map(|p| p.0.as_ptr() as *const c_char).collect();
        let lens: Vec<usize> = pats.iter().map(|p| p.0.len()).collect();
        let base = if once { HS_FLAG_SINGLEMATCH } else { 0 };
        let flags: Vec<c_uint> = pats.iter().map(|p| if p.1 { base | HS_FLAG_CASELESS } else { base }).collect();
        let ids: Vec<c_uint> = (0..pats.len() as c_uint).collect();
        let mut db: *mut c_void = ptr::null_mut();
        let mut err: *mut HsCompileError = ptr::null_mut();
        let rc = unsafe {
            hs_compile_lit_multi(ptrs.as_ptr(), flags.as_ptr(), ids.as_ptr(), lens.as_ptr(), pats.len() as c_uint, mode, ptr::null(), &mut db, &mut err)
        };
        if rc != 0 {
            let msg = if err.is_null() {
                format!("hs_compile_lit_multi failed ({rc})")
            } else {
                let m = unsafe { CStr::from_ptr((*err).message) }.to_string_lossy().into_owned();
                unsafe { hs_free_compile_error(err) };
                m
            };
            return Err(msg);
        }
        Ok(HsDb { db, id: NEXT_DB_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) })
    }

    /// Bytes of the compiled database.
    pub fn size(&self) -> usize {
        let mut n = 0usize;
        unsafe { hs_database_size(self.db, &mut n) };
        n
    }

    /// Calls `f(pattern id, end offset of the match)` for the patterns found in `hay`.
    pub fn scan<F: FnMut(u32, usize)>(&self, scratch: &mut Scratch, hay: &[u8], f: F) {
        if hay.is_empty() {
            return;
        }
        scratch.fit(self);
        struct Ctx<F> {
            f: F,
            base: usize,
        }
        unsafe extern "C" fn on_match<F: FnMut(u32, usize)>(id: c_uint, _from: c_ulonglong, to: c_ulonglong, _flags: c_uint, ctx: *mut c_void) -> c_int {
            let c = &mut *(ctx as *mut Ctx<F>);
            (c.f)(id, c.base + to as usize);
            0
        }
        let mut ctx = Ctx { f, base: 0 };
        // Buffers are bounded far below 4 GiB (reassembly depth, body limit); scan in u32 slices anyway.
        for part in hay.chunks(u32::MAX as usize) {
            for _attempt in 0..2 {
                let rc = unsafe { hs_scan(self.db, part.as_ptr() as *const c_char, part.len() as c_uint, 0, scratch.s, on_match::<F>, &mut ctx as *mut Ctx<F> as *mut c_void) };
                if rc != HS_INVALID {
                    break;
                }
                // The scratch does not fit after all (fits are recorded by unique database
                // id, so this is a defence, not a path taken): refit, retry.
                scratch.fitted.clear();
                scratch.fit(self);
            }
            ctx.base += part.len();
        }
    }
}

/// The state of one stream scanned with a streaming database (`HsDb::build_stream`): a few
/// hundred bytes of history, so matches spanning the pieces are found.
pub struct HsStream {
    s: *mut c_void,
    /// Bytes scanned so far: match offsets are relative to the stream's start.
    pub offset: u64,
}

unsafe impl Send for HsStream {}

impl HsStream {
    pub fn open(db: &HsDb) -> Option<HsStream> {
        let mut s: *mut c_void = ptr::null_mut();
        let rc = unsafe { hs_open_stream(db.db, 0, &mut s) };
        (rc == 0 && !s.is_null()).then_some(HsStream { s, offset: 0 })
    }

    /// Scans the next piece; calls `f(pattern id, end offset in the stream)`. `db` must be the
    /// database the stream was opened with.
    pub fn scan<F: FnMut(u32, u64)>(&mut self, db: &HsDb, scratch: &mut Scratch, data: &[u8], f: F) -> bool {
        if data.is_empty() {
            return true;
        }
        scratch.fit(db);
        struct Ctx<F> {
            f: F,
        }
        unsafe extern "C" fn on_match<F: FnMut(u32, u64)>(id: c_uint, _from: c_ulonglong, to: c_ulonglong, _flags: c_uint, ctx: *mut c_void) -> c_int {
            let c = &mut *(ctx as *mut Ctx<F>);
            (c.f)(id, to);
            0
        }
        let mut ctx = Ctx { f };
        let mut ok = true;
        for part in data.chunks(u32::MAX as usize) {
            let mut rc = HS_INVALID;
            for _attempt in 0..2 {
                rc = unsafe { hs_scan_stream(self.s, part.as_ptr() as *const c_char, part.len() as c_uint, 0, scratch.s, on_match::<F>, &mut ctx as *mut Ctx<F> as *mut c_void) };
                if rc != HS_INVALID {
                    break;
                }
                // As in HsDb::scan (Hyperscan checks the scratch before it touches the stream).
                scratch.fitted.clear();
                scratch.fit(db);
            }
            ok &= rc == 0;
            self.offset += part.len() as u64;
        }
        ok
    }
}

impl Drop for HsStream {
    fn drop(&mut self) {
        unsafe {
            hs_close_stream(self.s, ptr::null_mut(), None, ptr::null_mut());
        }
    }
}

impl HsDb {
    /// Bytes of state each open stream of this (streaming) database holds.
    pub fn stream_size(&self) -> usize {
        let mut n = 0usize;
        unsafe { hs_stream_size(self.db, &mut n) };
        n
    }
}

/// Per-thread scan scratch, grown to fit every database it is used with.
pub struct Scratch {
    s: *mut c_void,
    /// Bitset of the database ids it fits.
    fitted: Vec<u64>,
}

unsafe impl Send for Scratch {}

impl Default for Scratch {
    fn default() -> Self {
        Scratch { s: ptr::null_mut(), fitted: Vec::new() }
    }
}

impl Scratch {
    /// A scratch fitted to every one of `dbs`: a rule set's prototype, cloned for each engine
    /// (`try_clone`). Growing a scratch database by database costs one reallocation each, and
    /// an engine would otherwise pay them on its first packets.
    pub fn fitted_to<'a>(dbs: impl Iterator<Item = &'a HsDb>) -> Scratch {
        let mut s = Scratch::default();
        for db in dbs {
            s.fit(db);
        }
        s
    }

    /// A copy of this scratch's size and fit (not of any scan in progress: none can be, the
    /// caller holds it).
    pub fn try_clone(&self) -> Scratch {
        let mut s = Scratch::default();
        if !self.s.is_null() && unsafe { hs_clone_scratch(self.s, &mut s.s) } == 0 {
            s.fitted = self.fitted.clone();
        }
        s
    }

    #[inline]
    fn fit(&mut self, db: &HsDb) {
        let (w, b) = (db.id as usize >> 6, 1u64 << (db.id & 63));
        if self.fitted.get(w).is_some_and(|x| x & b != 0) {
            return;
        }
        // hs_alloc_scratch on an existing scratch grows it to fit this database as well.
        let rc = unsafe { hs_alloc_scratch(db.db, &mut self.s) };
        if rc == 0 {
            if self.fitted.len() <= w {
                self.fitted.resize(w + 1, 0);
            }
            self.fitted[w] |= b;
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.s.is_null() {
            unsafe {
                hs_free_scratch(self.s);
            }
        }
    }
}

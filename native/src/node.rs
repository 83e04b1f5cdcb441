//! The N-API boundary: a compiled rule set, an engine, and one call per batch of frames.

use crate::detect_engine::RuleSet;
use crate::engine::{ChecksumMode, Engine};
use crate::output_eve::alert_json;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[napi(object)]
pub struct RuleSource {
    pub name: String,
    pub text: String,
}

#[napi(object)]
pub struct RuleFailure {
    pub sid: Option<u32>,
    pub file: String,
    pub line: u32,
    pub reason: String,
}

#[napi(object)]
pub struct LoadReport {
    pub rules: u32,
    pub loaded: u32,
    pub failed: u32,
    pub failures: Vec<RuleFailure>,
}

/// A compiled, immutable rule set; engines share it (swap with `DpiEngine.setRules`).
#[napi]
pub struct DpiRules {
    inner: Arc<RuleSet>,
}

/// Compiling a rule set off the JavaScript thread (a libuv pool thread): ET Open takes
/// seconds, and a service must go on inspecting with its old rules meanwhile.
pub struct CompileTask {
    sources: Vec<(String, String)>,
}

impl Task for CompileTask {
    type Output = RuleSet;
    type JsValue = DpiRules;

    fn compute(&mut self) -> Result<RuleSet> {
        let sources = std::mem::take(&mut self.sources);
        // a panic (a bug met by some rule) rejects the promise instead of aborting the process
        std::panic::catch_unwind(move || RuleSet::load(&sources)).map_err(|p| {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Error::new(Status::GenericFailure, format!("rule compilation failed: {msg}"))
        })
    }

    fn resolve(&mut self, _env: Env, output: RuleSet) -> Result<DpiRules> {
        Ok(DpiRules { inner: Arc::new(output) })
    }
}

#[napi]
impl DpiRules {
    #[napi(factory)]
    pub fn compile(sources: Vec<RuleSource>) -> DpiRules {
        let src: Vec<(String, String)> = sources.into_iter().map(|s| (s.name, s.text)).collect();
        DpiRules { inner: Arc::new(RuleSet::load(&src)) }
    }

    /// `compile` on a pool thread: resolves with the rule set, the calling thread never waits.
    #[napi(ts_return_type = "Promise<DpiRules>")]
    pub fn compile_async(sources: Vec<RuleSource>) -> AsyncTask<CompileTask> {
        AsyncTask::new(CompileTask { sources: sources.into_iter().map(|s| (s.name, s.text)).collect() })
    }

    /// The raw multi-pattern scan alone (every payload fast pattern of the set) over the
    /// given bytes: the matcher's physical limit, the benchmark's baseline. With `offsets`
    /// (n+1 entries) each segment is scanned on its own, as the engine scans each payload.
    /// Returns matches (aho-corasick: every overlapping occurrence).
    #[napi]
    pub fn raw_scan(&self, data: Buffer, offsets: Option<Uint32Array>) -> Result<u32> {
        let Some(pf) = &self.inner.pkt_pf else { return Ok(0) };
        let mut n = 0usize;
        for seg in segments(&data, offsets.as_deref())? {
            n += pf.count(seg);
        }
        Ok(n as u32)
    }

    /// The same raw scan with Hyperscan/Vectorscan (each pattern reported once per segment);
    /// null when the engine was built without the `hyperscan` feature.
    #[napi]
    pub fn raw_scan_hs(&self, data: Buffer, offsets: Option<Uint32Array>) -> Result<Option<u32>> {
        #[cfg(feature = "hyperscan")]
        {
            let Some(pf) = &self.inner.pkt_pf else { return Ok(Some(0)) };
            let mut sc = crate::detect_hs::Scratch::default();
            let mut n = 0usize;
            for seg in segments(&data, offsets.as_deref())? {
                match pf.count_hs(seg, &mut sc) {
                    Some(k) => n += k,
                    None => return Ok(None),
                }
            }
            Ok(Some(n as u32))
        }
        #[cfg(not(feature = "hyperscan"))]
        {
            let _ = (data, offsets);
            Ok(None)
        }
    }

    /// Which matcher the prefilter runs: "hyperscan" or "aho-corasick".
    #[napi]
    pub fn matcher(&self) -> String {
        self.inner.matcher().to_string()
    }

    #[napi]
    pub fn report(&self) -> LoadReport {
        let r = &self.inner;
        LoadReport {
            rules: r.total as u32,
            loaded: r.rules.len() as u32,
            failed: r.errors.len() as u32,
            failures: r.errors.iter().map(|e| RuleFailure { sid: e.sid, file: e.file.clone(), line: e.line as u32, reason: e.reason.clone() }).collect(),
        }
    }
}

fn engine_failed(msg: String) -> Error {
    Error::new(Status::GenericFailure, format!("DPI engine failed on this batch and was reset: {msg}"))
}

#[napi]
pub struct DpiEngine {
    /// Shared with the batch in flight on a libuv pool thread (`process_batch_async`).
    engine: Arc<Mutex<Engine>>,
    /// A batch is in flight (set when it is queued, cleared when its promise settles, both on
    /// the JavaScript thread): other calls are refused meanwhile, not queued behind it or run
    /// before it.
    busy: Arc<AtomicBool>,
}

/// Run one batch (offsets already checked) with the engine; alerts as EVE JSON lines.
fn run_batch(engine: &Mutex<Engine>, bytes: &[u8], offsets: &[u32], ts_us: &[f64], linktypes: &[u32]) -> Result<Vec<String>> {
    let mut engine = engine.lock().unwrap_or_else(|p| p.into_inner());
    // A panic (a bug met by some input) fails this batch and resets the engine: see
    // Engine::guarded. The service dead-letters the batch.
    let run = engine.guarded(|engine| {
        let mut alerts = Vec::new();
        let n = ts_us.len();
        for i in 0..n {
            let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
            // Start fetching a frame PREFETCH_FRAMES ahead while this one is processed.
            if i + crate::engine::PREFETCH_FRAMES < n {
                let j = i + crate::engine::PREFETCH_FRAMES;
                crate::engine::prefetch(&bytes[offsets[j] as usize..offsets[j + 1] as usize]);
            }
            engine.process(linktypes[i], ts_us[i] as i64, &bytes[s..e], i as u32, &mut alerts);
        }
        alerts
    });
    run.map(|alerts| alerts.iter().map(alert_json).collect()).map_err(engine_failed)
}

/// The shape of a batch: offsets has n+1 entries, in range and ascending; n linktypes.
fn check_batch(bytes: &[u8], offsets: &[u32], ts_us: &[f64], linktypes: &[u32]) -> Result<()> {
    let n = ts_us.len();
    if offsets.len() != n + 1 || linktypes.len() != n {
        return Err(Error::new(Status::InvalidArg, "offsets must have n+1 entries and linktypes n".to_string()));
    }
    for i in 0..n {
        let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
        if s > e || e > bytes.len() {
            return Err(Error::new(Status::InvalidArg, format!("frame {i}: offsets out of range")));
        }
    }
    Ok(())
}

/// One batch on a libuv pool thread: the JavaScript thread goes on, and engines of other
/// partitions run on the other pool threads at the same time (one engine per partition).
pub struct BatchTask {
    engine: Arc<Mutex<Engine>>,
    busy: Arc<AtomicBool>,
    data: Buffer,
    offsets: Uint32Array,
    ts_us: Float64Array,
    linktypes: Uint32Array,
}

impl Task for BatchTask {
    type Output = Vec<String>;
    type JsValue = Vec<String>;

    fn compute(&mut self) -> Result<Vec<String>> {
        run_batch(&self.engine, &self.data, &self.offsets, &self.ts_us, &self.linktypes)
    }

    fn resolve(&mut self, _env: Env, output: Vec<String>) -> Result<Vec<String>> {
        Ok(output)
    }

    fn finally(&mut self, _env: Env) -> Result<()> {
        self.busy.store(false, Ordering::Release);
        Ok(())
    }
}

/// End of input on a libuv pool thread: every flow ended and inspected (a table of 200,000
/// flows takes a while, and the JavaScript thread serves other partitions meanwhile).
pub struct FinishTask {
    engine: Arc<Mutex<Engine>>,
    busy: Arc<AtomicBool>,
}

fn run_finish(engine: &Mutex<Engine>) -> Result<Vec<String>> {
    let mut engine = engine.lock().unwrap_or_else(|p| p.into_inner());
    let run = engine.guarded(|engine| {
        let mut alerts = Vec::new();
        engine.finish(&mut alerts);
        alerts
    });
    run.map(|alerts| alerts.iter().map(alert_json).collect()).map_err(engine_failed)
}

impl Task for FinishTask {
    type Output = Vec<String>;
    type JsValue = Vec<String>;

    fn compute(&mut self) -> Result<Vec<String>> {
        run_finish(&self.engine)
    }

    fn resolve(&mut self, _env: Env, output: Vec<String>) -> Result<Vec<String>> {
        Ok(output)
    }

    fn finally(&mut self, _env: Env) -> Result<()> {
        self.busy.store(false, Ordering::Release);
        Ok(())
    }
}

#[napi]
impl DpiEngine {
    /// checksum: "auto" (Suricata's default), "on" or "off"; max_flows: the flow table's cap
    /// (default 200,000; beyond it the least recently seen flows are evicted, counted);
    /// encryption: "default" (content rules stop at a TLS/SSH flow's encrypted data, Suricata's
    /// default) or "full" (they go on inspecting it).
    #[napi(constructor)]
    pub fn new(rules: &DpiRules, checksum: String, max_flows: Option<u32>, encryption: Option<String>) -> Result<DpiEngine> {
        let mode = match checksum.as_str() {
            "auto" => ChecksumMode::Auto,
            "on" | "all" => ChecksumMode::On,
            "off" | "none" => ChecksumMode::Off,
            x => return Err(Error::new(Status::InvalidArg, format!("checksum mode must be auto, on or off, not \"{x}\""))),
        };
        let mut engine = Engine::new(Arc::clone(&rules.inner), mode);
        if let Some(n) = max_flows {
            if n == 0 {
                return Err(Error::new(Status::InvalidArg, "maxFlows must be at least 1".to_string()));
            }
            engine.set_max_flows(n as usize);
        }
        match encryption.as_deref() {
            None | Some("default") => {}
            Some("full") => engine.set_inspect_encrypted(true),
            Some(x) => return Err(Error::new(Status::InvalidArg, format!("encryption handling must be default or full, not \"{x}\""))),
        }
        Ok(DpiEngine { engine: Arc::new(Mutex::new(engine)), busy: Arc::new(AtomicBool::new(false)) })
    }

    /// The engine, unless a batch of it is running on a pool thread (the caller must wait for it).
    fn idle(&self) -> Result<std::sync::MutexGuard<'_, Engine>> {
        let busy = || Error::new(Status::GenericFailure, "the engine is busy with a batch in flight (await processBatchAsync first)".to_string());
        if self.busy.load(Ordering::Acquire) {
            return Err(busy());
        }
        match self.engine.try_lock() {
            Ok(g) => Ok(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => Err(busy()),
        }
    }

    #[napi]
    pub fn set_rules(&mut self, rules: &DpiRules) -> Result<()> {
        self.idle()?.set_rules(Arc::clone(&rules.inner));
        Ok(())
    }

    /// One batch: frames concatenated in `data`; `offsets` has n+1 entries; `ts_us` and
    /// `linktypes` one per frame. Returns EVE JSON alert lines.
    #[napi]
    pub fn process_batch(&mut self, data: Buffer, offsets: Uint32Array, ts_us: Float64Array, linktypes: Uint32Array) -> Result<Vec<String>> {
        check_batch(&data, &offsets, &ts_us, &linktypes)?;
        drop(self.idle()?);
        run_batch(&self.engine, &data, &offsets, &ts_us, &linktypes)
    }

    /// The same on a libuv pool thread; the batch's buffers must not change until it settles,
    /// and the engine takes no other call meanwhile.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn process_batch_async(&mut self, data: Buffer, offsets: Uint32Array, ts_us: Float64Array, linktypes: Uint32Array) -> Result<AsyncTask<BatchTask>> {
        check_batch(&data, &offsets, &ts_us, &linktypes)?;
        drop(self.idle()?);
        self.busy.store(true, Ordering::Release);
        Ok(AsyncTask::new(BatchTask { engine: Arc::clone(&self.engine), busy: Arc::clone(&self.busy), data, offsets, ts_us, linktypes }))
    }

    /// End of input: flush every flow (close-delimited bodies, pending transactions).
    #[napi]
    pub fn finish(&mut self) -> Result<Vec<String>> {
        drop(self.idle()?);
        run_finish(&self.engine)
    }

    /// The same on a libuv pool thread; the engine takes no other call meanwhile.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn finish_async(&mut self) -> Result<AsyncTask<FinishTask>> {
        drop(self.idle()?);
        self.busy.store(true, Ordering::Release);
        Ok(AsyncTask::new(FinishTask { engine: Arc::clone(&self.engine), busy: Arc::clone(&self.busy) }))
    }

    #[napi]
    pub fn stats(&self) -> Result<String> {
        let engine = self.idle()?;
        let s = &engine.stats;
        Ok(format!(
            "{{\"packets\":{},\"bytes\":{},\"decode_errors\":{},\"bad_checksums\":{},\"fragments_pending\":{},\"flows\":{},\"flows_evicted\":{},\"alerts\":{},\"active_flows\":{}}}",
            s.packets, s.bytes, s.decode_errors, s.bad_checksums, s.fragments_pending, s.flows, s.flows_evicted, s.alerts, engine.flow_count()
        ))
    }
}

/// Split `data` at `offsets` (n+1 entries), or the whole buffer as one segment.
fn segments<'a>(data: &'a [u8], offsets: Option<&[u32]>) -> Result<Vec<&'a [u8]>> {
    let Some(o) = offsets else { return Ok(vec![data]) };
    let mut v = Vec::with_capacity(o.len().saturating_sub(1));
    for w in o.windows(2) {
        let (s, e) = (w[0] as usize, w[1] as usize);
        if s > e || e > data.len() {
            return Err(Error::new(Status::InvalidArg, "offsets out of range".to_string()));
        }
        v.push(&data[s..e]);
    }
    Ok(v)
}

/// Bytes the native heaps hold: what mimalloc (the Rust allocator: flows, streams, app
/// state, rule sets) has committed, plus what glibc malloc (Hyperscan's and other C/C++
/// allocations) has in use. The benchmarks weigh engine state with it, apart from the
/// JavaScript heap. mimalloc commits its arenas eagerly on Linux and keeps freed pages for a
/// while, so the figure follows live memory only in a process started with
/// MIMALLOC_ARENA_EAGER_COMMIT=0 and MIMALLOC_PURGE_DELAY=0 (bench/dpi-scaling.mjs measures
/// in such a child process).
#[napi]
pub fn native_heap_bytes() -> f64 {
    let mut commit = 0usize;
    let null = std::ptr::null_mut();
    unsafe { libmimalloc_sys::mi_process_info(null, null, null, null, null, &mut commit, null, null) };
    let c_heap: f64 = {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            #[repr(C)]
            struct MallInfo2 {
                arena: usize,
                ordblks: usize,
                smblks: usize,
                hblks: usize,
                hblkhd: usize,
                usmblks: usize,
                fsmblks: usize,
                uordblks: usize,
                fordblks: usize,
                keepcost: usize,
            }
            extern "C" {
                fn mallinfo2() -> MallInfo2;
            }
            let m = unsafe { mallinfo2() };
            (m.uordblks + m.hblkhd) as f64
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            0.0
        }
    };
    commit as f64 + c_heap
}

/// Where the fields of the access lines of a batch lie (`crate::logline`): line `k` is
/// `data[offsets[k] .. offsets[k] + lengths[k])` (a negative length: not looked at), its row
/// `out[k * STRIDE .. (k + 1) * STRIDE)`. Returns the row length.
#[napi]
pub fn access_lines(data: Buffer, offsets: Uint32Array, lengths: Int32Array, mut out: Int32Array) -> Result<u32> {
    use crate::logline::{access_line, SKIPPED, STRIDE};
    let data: &[u8] = &data;
    let offs: &[u32] = &offsets;
    let lens: &[i32] = &lengths;
    let out: &mut [i32] = &mut out;
    if offs.len() < lens.len() || out.len() < lens.len() * STRIDE {
        return Err(Error::new(Status::InvalidArg, "an offset for every length and a row for every line".to_string()));
    }
    for (k, &len) in lens.iter().enumerate() {
        let row = &mut out[k * STRIDE..(k + 1) * STRIDE];
        let a = offs[k] as usize;
        if len < 0 || a + len as usize > data.len() {
            row[0] = SKIPPED;
            continue;
        }
        access_line(&data[a..a + len as usize], row);
    }
    Ok(STRIDE as u32)
}

/// Case-insensitive ASCII literals (loginspect's rule literals) found by Hyperscan in a batch
/// of lines, one call per batch: every occurrence of every literal in each line, reported as
/// (line, literal, start) so the caller credits each to the fields whose span holds it.
#[cfg(feature = "hyperscan")]
#[napi]
pub struct LiteralMatcher {
    db: crate::detect_hs::HsDb,
    scratch: crate::detect_hs::Scratch,
    lens: Vec<u32>,
}

#[cfg(feature = "hyperscan")]
#[napi]
impl LiteralMatcher {
    /// Literal `i` is reported as `i`. Each must be non-empty ASCII.
    #[napi(constructor)]
    pub fn new(literals: Vec<String>) -> Result<LiteralMatcher> {
        if literals.is_empty() || literals.iter().any(|l| l.is_empty() || !l.is_ascii()) {
            return Err(Error::new(Status::InvalidArg, "literals must be a non-empty list of non-empty ASCII strings".to_string()));
        }
        let pats: Vec<(&[u8], bool)> = literals.iter().map(|l| (l.as_bytes(), true)).collect();
        let db = crate::detect_hs::HsDb::build(&pats, false).map_err(|e| Error::new(Status::InvalidArg, e))?;
        Ok(LiteralMatcher { db, scratch: crate::detect_hs::Scratch::default(), lens: literals.iter().map(|l| l.len() as u32).collect() })
    }

    /// Line `k` is `data[offsets[k] .. offsets[k + 1])`; the (line, literal, start) triples go
    /// to `out`. Returns how many, or -1 when `out` cannot hold them all (then none is usable).
    #[napi]
    pub fn scan(&mut self, data: Buffer, offsets: Uint32Array, mut out: Uint32Array) -> Result<i64> {
        let data: &[u8] = &data;
        let offs: &[u32] = &offsets;
        if offs.is_empty() || offs.windows(2).any(|w| w[0] > w[1]) || offs[offs.len() - 1] as usize > data.len() {
            return Err(Error::new(Status::InvalidArg, "offsets must ascend within the data".to_string()));
        }
        let out: &mut [u32] = &mut out;
        let mut n = 0usize;
        let mut full = false;
        for k in 0..offs.len() - 1 {
            let (a, b) = (offs[k] as usize, offs[k + 1] as usize);
            let lens = &self.lens;
            self.db.scan(&mut self.scratch, &data[a..b], |id, end| {
                if n + 3 > out.len() {
                    full = true;
                    return;
                }
                out[n] = k as u32;
                out[n + 1] = id;
                out[n + 2] = (end - lens[id as usize] as usize) as u32;
                n += 3;
            });
            if full {
                return Ok(-1);
            }
        }
        Ok((n / 3) as i64)
    }
}

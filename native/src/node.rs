//! The N-API boundary: a compiled rule set, an engine, and one call per batch of frames.

use crate::detect_engine::RuleSet;
use crate::engine::{ChecksumMode, Engine};
use crate::output_eve::alert_json;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

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
    engine: Engine,
}

#[napi]
impl DpiEngine {
    /// checksum: "auto" (Suricata's default), "on" or "off".
    #[napi(constructor)]
    pub fn new(rules: &DpiRules, checksum: String) -> Result<DpiEngine> {
        let mode = match checksum.as_str() {
            "auto" => ChecksumMode::Auto,
            "on" | "all" => ChecksumMode::On,
            "off" | "none" => ChecksumMode::Off,
            x => return Err(Error::new(Status::InvalidArg, format!("checksum mode must be auto, on or off, not \"{x}\""))),
        };
        Ok(DpiEngine { engine: Engine::new(Arc::clone(&rules.inner), mode) })
    }

    #[napi]
    pub fn set_rules(&mut self, rules: &DpiRules) {
        self.engine.set_rules(Arc::clone(&rules.inner));
    }

    /// One batch: frames concatenated in `data`; `offsets` has n+1 entries; `ts_us` and
    /// `linktypes` one per frame. Returns EVE JSON alert lines.
    #[napi]
    pub fn process_batch(&mut self, data: Buffer, offsets: Uint32Array, ts_us: Float64Array, linktypes: Uint32Array) -> Result<Vec<String>> {
        let n = ts_us.len();
        if offsets.len() != n + 1 || linktypes.len() != n {
            return Err(Error::new(Status::InvalidArg, "offsets must have n+1 entries and linktypes n".to_string()));
        }
        let bytes: &[u8] = &data;
        for i in 0..n {
            let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
            if s > e || e > bytes.len() {
                return Err(Error::new(Status::InvalidArg, format!("frame {i}: offsets out of range")));
            }
        }
        // A panic (a bug met by some input) fails this batch and resets the engine: see
        // Engine::guarded. The service dead-letters the batch.
        let run = self.engine.guarded(|engine| {
            let mut alerts = Vec::new();
            for i in 0..n {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                engine.process(linktypes[i], ts_us[i] as i64, &bytes[s..e], i as u32, &mut alerts);
            }
            alerts
        });
        run.map(|alerts| alerts.iter().map(alert_json).collect()).map_err(engine_failed)
    }

    /// End of input: flush every flow (close-delimited bodies, pending transactions).
    #[napi]
    pub fn finish(&mut self) -> Result<Vec<String>> {
        let run = self.engine.guarded(|engine| {
            let mut alerts = Vec::new();
            engine.finish(&mut alerts);
            alerts
        });
        run.map(|alerts| alerts.iter().map(alert_json).collect()).map_err(engine_failed)
    }

    #[napi]
    pub fn stats(&self) -> String {
        let s = &self.engine.stats;
        format!(
            "{{\"packets\":{},\"bytes\":{},\"decode_errors\":{},\"bad_checksums\":{},\"fragments_pending\":{},\"flows\":{},\"flows_evicted\":{},\"alerts\":{},\"active_flows\":{}}}",
            s.packets, s.bytes, s.decode_errors, s.bad_checksums, s.fragments_pending, s.flows, s.flows_evicted, s.alerts, self.engine.flow_count()
        )
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

//! Cordon's anti-malware scanner: YARA rules compiled once by YARA-X, run over files off the JS
//! thread (napi AsyncTask on libuv's pool), each file read once for both the scan and its
//! SHA-256.
//!
//! Files are hostile: opened with O_NOFOLLOW | O_NONBLOCK (a symlink swapped in is not followed,
//! a FIFO does not block the thread), checked with fstat on the open descriptor (only regular
//! files are read), and never read past the size limit — a file above it is reported as such
//! without reading a byte, and a file that grows past it while being read is cut off and
//! reported the same way. The bytes scanned are the bytes hashed.

use napi::bindgen_prelude::*;
use napi::{Env, Task};
use napi_derive::napi;
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[napi(object)]
pub struct YaraSource {
    /// The name errors point at (a file path).
    pub name: String,
    /// The namespace its rules live in (rule names must be unique within one).
    pub namespace: String,
    pub text: String,
}

#[napi(object)]
pub struct YaraMatch {
    pub rule: String,
    pub namespace: String,
    pub tags: Vec<String>,
    /// The rule's metadata as a JSON object.
    pub meta: String,
    /// Identifiers of the patterns that matched, with the offset of each one's first match.
    pub patterns: Vec<String>,
    pub offsets: Vec<f64>,
}

#[napi(object)]
pub struct FileScan {
    pub path: String,
    /// ok | too_large | not_regular | not_found | unreadable | timeout | error
    pub status: String,
    /// The file's size by fstat (0 when it could not be opened).
    pub size: f64,
    /// Bytes read and scanned.
    pub bytes: f64,
    /// SHA-256 of the bytes scanned (status ok or timeout).
    pub sha256: Option<String>,
    pub matches: Vec<YaraMatch>,
    pub error: Option<String>,
    /// Time spent on this file, microseconds.
    pub micros: f64,
}

pub struct Compiled {
    rules: yara_x::Rules,
    count: u32,
}

/// Rules compiled once; shared by every scan (the compiled form is immutable).
#[napi]
pub struct YaraRules {
    inner: Arc<Compiled>,
}

fn compile_sources(sources: &[(String, String, String)]) -> Result<Compiled> {
    let mut compiler = yara_x::Compiler::new();
    for (name, namespace, text) in sources {
        compiler.new_namespace(namespace);
        let src = yara_x::SourceCode::from(text.as_str()).with_origin(name.as_str());
        if let Err(err) = compiler.add_source(src) {
            // the first error, as a JSON object the TS side turns into a coded error
            let (line, column) = err
                .labels()
                .next()
                .and_then(|l| serde_json::to_value(&l).ok())
                .map(|v| (v["line"].as_u64().unwrap_or(0), v["column"].as_u64().unwrap_or(0)))
                .unwrap_or((0, 0));
            let detail = serde_json::json!({
                "kind": "bad_rule",
                "file": name,
                "line": line,
                "column": column,
                "code": err.code(),
                "message": err.title(),
            });
            return Err(Error::new(Status::InvalidArg, detail.to_string()));
        }
    }
    let rules = compiler.build();
    let count = rules.iter().len() as u32;
    Ok(Compiled { rules, count })
}

fn take_sources(sources: Vec<YaraSource>) -> Vec<(String, String, String)> {
    sources.into_iter().map(|s| (s.name, s.namespace, s.text)).collect()
}

pub struct CompileTask {
    sources: Vec<(String, String, String)>,
}

impl Task for CompileTask {
    type Output = Compiled;
    type JsValue = YaraRules;
    fn compute(&mut self) -> Result<Self::Output> {
        compile_sources(&self.sources)
    }
    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(YaraRules { inner: Arc::new(output) })
    }
}

pub struct ScanTask {
    rules: Arc<Compiled>,
    paths: Vec<String>,
    max_bytes: u64,
    timeout: Duration,
}

impl Task for ScanTask {
    type Output = Vec<FileScan>;
    type JsValue = Vec<FileScan>;
    fn compute(&mut self) -> Result<Self::Output> {
        // one scanner for the batch: setting one up costs more than a small file's scan
        let mut scanner = yara_x::Scanner::new(&self.rules.rules);
        scanner.set_timeout(self.timeout);
        Ok(self.paths.iter().map(|p| scan_one(&mut scanner, p, self.max_bytes)).collect())
    }
    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct ScanBufferTask {
    rules: Arc<Compiled>,
    data: Buffer,
    timeout: Duration,
}

impl Task for ScanBufferTask {
    type Output = FileScan;
    type JsValue = FileScan;
    fn compute(&mut self) -> Result<Self::Output> {
        let mut scanner = yara_x::Scanner::new(&self.rules.rules);
        scanner.set_timeout(self.timeout);
        let start = Instant::now();
        let data: &[u8] = &self.data;
        let mut out = blank("", "ok");
        out.size = data.len() as f64;
        scan_bytes(&mut scanner, data, &mut out);
        out.micros = start.elapsed().as_micros() as f64;
        Ok(out)
    }
    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

fn blank(path: &str, status: &str) -> FileScan {
    FileScan {
        path: path.to_string(),
        status: status.to_string(),
        size: 0.0,
        bytes: 0.0,
        sha256: None,
        matches: Vec::new(),
        error: None,
        micros: 0.0,
    }
}

fn errno_status(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => "not_found",
        // O_NOFOLLOW on a symlink
        Some(libc::ELOOP) => "not_regular",
        Some(libc::EACCES) | Some(libc::EPERM) => "unreadable",
        _ => "error",
    }
}

fn open_hostile(path: &str) -> std::io::Result<std::fs::File> {
    let c = CString::new(path).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let base = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // O_NOATIME: a scan should not look like a read to whoever checks access times; only the
    // file's owner (or root) may ask for it, so fall back without it
    let mut fd = unsafe { libc::open(c.as_ptr(), base | libc::O_NOATIME) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
        fd = unsafe { libc::open(c.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

fn scan_one(scanner: &mut yara_x::Scanner, path: &str, max_bytes: u64) -> FileScan {
    let start = Instant::now();
    let mut out = blank(path, "ok");
    let finish = |mut out: FileScan| {
        out.micros = start.elapsed().as_micros() as f64;
        out
    };
    let file = match open_hostile(path) {
        Ok(f) => f,
        Err(e) => {
            out.status = errno_status(&e).to_string();
            out.error = Some(e.to_string());
            return finish(out);
        }
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            out.status = "error".into();
            out.error = Some(e.to_string());
            return finish(out);
        }
    };
    out.size = meta.len() as f64;
    if !meta.file_type().is_file() {
        out.status = "not_regular".into();
        return finish(out);
    }
    if meta.len() > max_bytes {
        out.status = "too_large".into();
        return finish(out);
    }
    // one byte past the limit tells a file that grew while being read
    let mut data = Vec::with_capacity(meta.len() as usize);
    if let Err(e) = file.take(max_bytes + 1).read_to_end(&mut data) {
        out.status = errno_status(&e).to_string();
        out.error = Some(e.to_string());
        return finish(out);
    }
    if data.len() as u64 > max_bytes {
        out.status = "too_large".into();
        out.size = data.len() as f64;
        return finish(out);
    }
    scan_bytes(scanner, &data, &mut out);
    finish(out)
}

fn scan_bytes(scanner: &mut yara_x::Scanner, data: &[u8], out: &mut FileScan) {
    out.bytes = data.len() as f64;
    out.sha256 = Some(hex(&Sha256::digest(data)));
    match scanner.scan(data) {
        Ok(results) => {
            for rule in results.matching_rules() {
                let mut patterns = Vec::new();
                let mut offsets = Vec::new();
                for p in rule.patterns() {
                    if let Some(m) = p.matches().next() {
                        patterns.push(p.identifier().to_string());
                        offsets.push(m.range().start as f64);
                    }
                }
                out.matches.push(YaraMatch {
                    rule: rule.identifier().to_string(),
                    namespace: rule.namespace().to_string(),
                    tags: rule.tags().map(|t| t.identifier().to_string()).collect(),
                    meta: meta_json(&rule),
                    patterns,
                    offsets,
                });
            }
        }
        Err(yara_x::ScanError::Timeout) => {
            out.status = "timeout".into();
        }
        Err(e) => {
            out.status = "error".into();
            out.error = Some(e.to_string());
        }
    }
}

/// The rule's metadata as one JSON object (a key given twice: the last value).
fn meta_json(rule: &yara_x::Rule) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in rule.metadata() {
        let v = match v {
            yara_x::MetaValue::Integer(i) => serde_json::Value::from(i),
            yara_x::MetaValue::Float(f) => serde_json::Value::from(f),
            yara_x::MetaValue::Bool(b) => serde_json::Value::from(b),
            yara_x::MetaValue::String(s) => serde_json::Value::from(s),
            yara_x::MetaValue::Bytes(b) => serde_json::Value::from(String::from_utf8_lossy(b.as_ref()).into_owned()),
        };
        map.insert(k.to_string(), v);
    }
    serde_json::Value::Object(map).to_string()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[napi]
impl YaraRules {
    /// Compile on the calling thread (small rule sets, tools).
    #[napi(factory)]
    pub fn compile(sources: Vec<YaraSource>) -> Result<YaraRules> {
        Ok(YaraRules { inner: Arc::new(compile_sources(&take_sources(sources))?) })
    }

    /// Compile on libuv's pool: a large rule set does not stall the event loop.
    #[napi(ts_return_type = "Promise<YaraRules>")]
    pub fn compile_async(sources: Vec<YaraSource>) -> AsyncTask<CompileTask> {
        AsyncTask::new(CompileTask { sources: take_sources(sources) })
    }

    #[napi(getter)]
    pub fn rule_count(&self) -> u32 {
        self.inner.count
    }

    /// Scan a batch of files, one after the other on one pool thread.
    #[napi(ts_return_type = "Promise<FileScan[]>")]
    pub fn scan_files(&self, paths: Vec<String>, max_bytes: f64, timeout_ms: u32) -> AsyncTask<ScanTask> {
        AsyncTask::new(ScanTask {
            rules: self.inner.clone(),
            paths,
            max_bytes: if max_bytes.is_finite() && max_bytes >= 0.0 { max_bytes as u64 } else { 0 },
            timeout: Duration::from_millis(timeout_ms.max(1) as u64),
        })
    }

    /// Scan bytes already in memory (tests, tools).
    #[napi(ts_return_type = "Promise<FileScan>")]
    pub fn scan_buffer(&self, data: Buffer, timeout_ms: u32) -> AsyncTask<ScanBufferTask> {
        AsyncTask::new(ScanBufferTask {
            rules: self.inner.clone(),
            data,
            timeout: Duration::from_millis(timeout_ms.max(1) as u64),
        })
    }
}

/// The YARA-X version this addon was built with.
#[napi]
pub fn yara_x_version() -> String {
    "1.22".to_string()
}

//! A small HTTP/1.1 file server on `127.0.0.1` (std::net, a thread per
//! connection) with per-path fault injection and a request log.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::cmd::err;
use crate::files::flip_middle;

/// How long an idle keep-alive connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on a request head.
const MAX_HEAD: usize = 64 * 1024;

/// A fault injected into responses for matching paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer 404 as if the file were missing.
    NotFound,
    /// Answer with this status code and a short text body.
    Status(u16),
    /// Send only the first N bytes of the body but announce the full
    /// `Content-Length`, then close the connection.
    Truncate(usize),
    /// Wait this long before responding (normally).
    Delay(Duration),
    /// Close the connection without any response.
    DropConnection,
    /// Flip some bytes in the middle of the body (length unchanged).
    Corrupt,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// Percent-decoded path without query, e.g. `/dists/bookworm/InRelease`.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

struct Rule {
    suffix: String,
    fault: Fault,
    remaining: Option<usize>,
}

struct Shared {
    root: PathBuf,
    stop: AtomicBool,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<RequestRecord>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves the files under a directory over HTTP/1.1 on `127.0.0.1:<port>`.
///
/// GET and HEAD; 200 with `Content-Length`; 404 for missing files and
/// directories; `Range: bytes=N-`, `bytes=N-M` and `bytes=-N` give 206 with
/// `Content-Range` (416 when unsatisfiable); paths with `..` get 403.
/// Connections are kept alive unless the client asks otherwise. Dropping the
/// server stops accepting connections.
pub struct LoopbackServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LoopbackServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackServer")
            .field("addr", &self.addr)
            .field("root", &self.shared.root)
            .finish()
    }
}

impl LoopbackServer {
    /// Starts serving `root` on an ephemeral loopback port.
    pub fn start(root: &Path) -> io::Result<LoopbackServer> {
        let root = root
            .canonicalize()
            .map_err(|e| err(format!("cannot serve {}: {e}", root.display())))?;
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            root,
            stop: AtomicBool::new(false),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let sh = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("koshin-testkit-http-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &sh))?;
        Ok(LoopbackServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` into every request whose path ends with `path_suffix`
    /// (e.g. `InRelease`, `main/binary-amd64/Packages.gz`), replacing an
    /// earlier fault for the same suffix. When several suffixes match, the
    /// longest wins.
    pub fn set_fault(&self, path_suffix: &str, fault: Fault) {
        self.add_rule(path_suffix, fault, None);
    }

    /// Like [`LoopbackServer::set_fault`] but only for the next `times`
    /// matching requests (e.g. to test retries).
    pub fn set_fault_times(&self, path_suffix: &str, fault: Fault, times: usize) {
        self.add_rule(path_suffix, fault, Some(times));
    }

    fn add_rule(&self, suffix: &str, fault: Fault, remaining: Option<usize>) {
        let mut rules = lock(&self.shared.rules);
        rules.retain(|r| r.suffix != suffix);
        rules.push(Rule {
            suffix: suffix.to_owned(),
            fault,
            remaining,
        });
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.rules).clear();
    }

    /// How many requests so far had a path ending with `path_suffix`.
    pub fn requests(&self, path_suffix: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .count()
    }

    /// How many requests so far had a path containing `needle` anywhere
    /// (e.g. `/by-hash/SHA256/`).
    pub fn requests_matching(&self, needle: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.path.contains(needle))
            .count()
    }

    /// All request paths so far, in order.
    pub fn request_log(&self) -> Vec<String> {
        lock(&self.shared.log)
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }

    /// All requests so far with method and `Range` header, in order.
    pub fn request_records(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(stream) => {
                let sh = Arc::clone(shared);
                // If the thread cannot be spawned the connection is dropped.
                let _ = thread::Builder::new()
                    .name("koshin-testkit-conn".to_owned())
                    .spawn(move || {
                        let _ = serve_connection(stream, &sh);
                    });
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        let conn = self.header("Connection").map(str::to_ascii_lowercase);
        let conn = conn.as_deref().unwrap_or("");
        if self.version == "HTTP/1.0" {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }
}

enum Incoming {
    Request(Request),
    Closed,
    Bad,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Incoming {
    let mut head = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return Incoming::Closed,
            Ok(_) => {}
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Incoming::Bad;
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF between requests
            }
            break;
        }
        lines.push(text);
    }
    let mut parts = lines[0].split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Incoming::Bad;
    };
    let headers = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Incoming::Request(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers,
    })
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let req = match read_request(&mut reader) {
            Incoming::Request(r) => r,
            Incoming::Closed => return Ok(()),
            Incoming::Bad => {
                send(&mut out, 400, &[], b"bad request\n", true, false)?;
                return Ok(());
            }
        };
        let keep = respond(&mut out, &req, shared)?;
        if !keep || shared.stop.load(Ordering::SeqCst) {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Answers one request; returns whether the connection stays open.
fn respond(out: &mut TcpStream, req: &Request, shared: &Shared) -> io::Result<bool> {
    let path = request_path(&req.target);
    lock(&shared.log).push(RequestRecord {
        method: req.method.clone(),
        path: path.clone(),
        range: req.header("Range").map(str::to_owned),
    });
    let head_only = req.method == "HEAD";
    let keep = req.keep_alive();
    if req.method != "GET" && !head_only {
        send(
            out,
            405,
            &[("Allow", "GET, HEAD".to_owned())],
            b"method not allowed\n",
            true,
            false,
        )?;
        return Ok(false);
    }

    let fault = take_fault(shared, &path);
    match &fault {
        Some(Fault::DropConnection) => {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Some(Fault::NotFound) => {
            send(out, 404, &[], b"not found (injected)\n", !keep, head_only)?;
            return Ok(keep);
        }
        Some(Fault::Status(code)) => {
            let body = format!("injected status {code}\n");
            send(out, *code, &[], body.as_bytes(), !keep, head_only)?;
            return Ok(keep);
        }
        Some(Fault::Delay(d)) => thread::sleep(*d),
        Some(Fault::Truncate(_) | Fault::Corrupt) | None => {}
    }

    let Some(file) = resolve(&shared.root, &path) else {
        send(out, 403, &[], b"forbidden\n", !keep, head_only)?;
        return Ok(keep);
    };
    let data = match std::fs::read(&file) {
        Ok(d) => d,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
            ) =>
        {
            send(out, 404, &[], b"not found\n", !keep, head_only)?;
            return Ok(keep);
        }
        Err(_) if file.is_dir() => {
            send(out, 404, &[], b"not found\n", !keep, head_only)?;
            return Ok(keep);
        }
        Err(e) => {
            send(out, 500, &[], format!("{e}\n").as_bytes(), true, head_only)?;
            return Ok(false);
        }
    };
    let total = data.len();
    let (status, mut body, mut headers) = match req.header("Range").map(|r| parse_range(r, total)) {
        Some(RangeResult::Satisfiable(start, end)) => (
            206,
            data[start..=end].to_vec(),
            vec![("Content-Range", format!("bytes {start}-{end}/{total}"))],
        ),
        Some(RangeResult::Unsatisfiable) => {
            send(
                out,
                416,
                &[("Content-Range", format!("bytes */{total}"))],
                b"range not satisfiable\n",
                !keep,
                head_only,
            )?;
            return Ok(keep);
        }
        Some(RangeResult::Ignore) | None => (200, data, Vec::new()),
    };
    headers.push(("Accept-Ranges", "bytes".to_owned()));
    match fault {
        Some(Fault::Corrupt) => {
            flip_middle(&mut body);
            send(out, status, &headers, &body, !keep, head_only)?;
            Ok(keep)
        }
        Some(Fault::Truncate(n)) => {
            let head = response_head(status, &headers, body.len(), true);
            out.write_all(head.as_bytes())?;
            if !head_only {
                out.write_all(&body[..n.min(body.len())])?;
            }
            out.flush()?;
            let _ = out.shutdown(Shutdown::Both);
            Ok(false)
        }
        _ => {
            send(out, status, &headers, &body, !keep, head_only)?;
            Ok(keep)
        }
    }
}

/// Finds (and uses up) the fault for `path`: the longest matching suffix.
fn take_fault(shared: &Shared, path: &str) -> Option<Fault> {
    let mut rules = lock(&shared.rules);
    let idx = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| path.ends_with(&r.suffix) && r.remaining != Some(0))
        .max_by_key(|(_, r)| r.suffix.len())
        .map(|(i, _)| i)?;
    let rule = &mut rules[idx];
    let fault = rule.fault.clone();
    if let Some(n) = rule.remaining.as_mut() {
        *n -= 1;
        if *n == 0 {
            rules.remove(idx);
        }
    }
    Some(fault)
}

/// The percent-decoded path of a request target (origin or absolute form),
/// without query or fragment.
fn request_path(target: &str) -> String {
    let mut t = target;
    if let Some(rest) = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
    {
        t = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let t = t.split(['?', '#']).next().unwrap_or("");
    let bytes = t.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Maps a decoded request path to a file under `root`; `None` if it tries
/// to leave the root.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    if !path.starts_with('/') || path.contains(['\0', '\\']) {
        return None;
    }
    let mut file = root.to_path_buf();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => file.push(p),
        }
    }
    Some(file)
}

enum RangeResult {
    Satisfiable(usize, usize),
    Unsatisfiable,
    Ignore,
}

/// Parses a single-range `bytes=` header against a body of `total` bytes.
/// Multiple ranges or bad syntax are ignored (the whole body is sent).
fn parse_range(header: &str, total: usize) -> RangeResult {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeResult::Ignore;
    };
    if spec.contains(',') {
        return RangeResult::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeResult::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix range: the last N bytes.
        return match b.parse::<usize>() {
            Ok(0) => RangeResult::Unsatisfiable,
            Ok(_) if total == 0 => RangeResult::Unsatisfiable,
            Ok(n) => RangeResult::Satisfiable(total - n.min(total), total - 1),
            Err(_) => RangeResult::Ignore,
        };
    }
    let Ok(start) = a.parse::<usize>() else {
        return RangeResult::Ignore;
    };
    let end = if b.is_empty() {
        usize::MAX
    } else {
        match b.parse::<usize>() {
            Ok(e) if e >= start => e,
            _ => return RangeResult::Ignore,
        }
    };
    if start >= total {
        return RangeResult::Unsatisfiable;
    }
    RangeResult::Satisfiable(start, end.min(total - 1))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn response_head(status: u16, headers: &[(&str, String)], len: usize, close: bool) -> String {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    head.push_str(&format!("Content-Length: {len}\r\n"));
    head.push_str("Content-Type: application/octet-stream\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(if close {
        "Connection: close\r\n"
    } else {
        "Connection: keep-alive\r\n"
    });
    head.push_str("\r\n");
    head
}

fn send(
    out: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    close: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut buf = response_head(status, headers, body.len(), close).into_bytes();
    if !head_only {
        buf.extend_from_slice(body);
    }
    out.write_all(&buf)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_and_traversal_is_refused() {
        assert_eq!(
            request_path("/pool/a/hello_1%2b2.deb?x=1"),
            "/pool/a/hello_1+2.deb"
        );
        assert_eq!(request_path("http://h:1/dists/x"), "/dists/x");
        assert_eq!(request_path("/%2e%2e/etc"), "/../etc");
        let root = Path::new("/srv");
        assert!(resolve(root, "/../etc/passwd").is_none());
        assert!(resolve(root, "/a/../../b").is_none());
        assert_eq!(resolve(root, "/a/./b"), Some(PathBuf::from("/srv/a/b")));
    }

    #[test]
    fn ranges() {
        assert!(matches!(
            parse_range("bytes=2-", 10),
            RangeResult::Satisfiable(2, 9)
        ));
        assert!(matches!(
            parse_range("bytes=2-4", 10),
            RangeResult::Satisfiable(2, 4)
        ));
        assert!(matches!(
            parse_range("bytes=2-40", 10),
            RangeResult::Satisfiable(2, 9)
        ));
        assert!(matches!(
            parse_range("bytes=-3", 10),
            RangeResult::Satisfiable(7, 9)
        ));
        assert!(matches!(
            parse_range("bytes=10-", 10),
            RangeResult::Unsatisfiable
        ));
        assert!(matches!(
            parse_range("bytes=0-1,4-5", 10),
            RangeResult::Ignore
        ));
        assert!(matches!(parse_range("items=0-1", 10), RangeResult::Ignore));
    }
}

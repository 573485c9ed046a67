//! The loopback HTTP server: files, ranges, HEAD, traversal, keep-alive,
//! every fault kind, the request log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use koshin_testkit::{Fault, LoopbackServer};

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a raw request (with `Connection: close`) and reads to EOF; `None`
/// when the server closed without a response.
fn raw(server: &LoopbackServer, request: &str) -> Option<Response> {
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf)
}

fn parse(buf: &[u8]) -> Option<Response> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Response {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    })
}

fn get(server: &LoopbackServer, path: &str, extra: &str) -> Option<Response> {
    raw(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"),
    )
}

fn fixture() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    std::fs::create_dir_all(dir.path().join("dists/x/main")).expect("mkdir");
    std::fs::write(dir.path().join("dists/x/main/Packages.gz"), &data).expect("write");
    std::fs::write(dir.path().join("dists/x/InRelease"), b"signed\n").expect("write");
    std::fs::write(dir.path().join("hello_1+b1.deb"), b"deb").expect("write");
    (dir, data)
}

fn start(root: &Path) -> LoopbackServer {
    LoopbackServer::start(root).expect("start")
}

#[test]
fn serves_files_heads_and_404s() {
    let (dir, data) = fixture();
    let server = start(dir.path());
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let r = get(&server, "/dists/x/main/Packages.gz", "").expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("1000"));
    assert_eq!(r.body, data);

    let r = raw(
        &server,
        "HEAD /dists/x/InRelease HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("7"));
    assert!(r.body.is_empty());

    assert_eq!(get(&server, "/missing", "").expect("r").status, 404);
    assert_eq!(get(&server, "/dists/x", "").expect("r").status, 404);
    assert_eq!(
        get(&server, "/hello_1%2bb1.deb", "").expect("r").body,
        b"deb"
    );
    assert_eq!(
        get(&server, "/dists/../../etc/passwd", "")
            .expect("r")
            .status,
        403
    );
    assert_eq!(
        get(&server, "/%2e%2e/etc/passwd", "").expect("r").status,
        403
    );
    let r = raw(&server, "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n").expect("r");
    assert_eq!(r.status, 405);

    assert_eq!(server.requests("Packages.gz"), 1);
    assert_eq!(server.requests("/hello_1+b1.deb"), 1);
    let log = server.request_log();
    assert_eq!(log[0], "/dists/x/main/Packages.gz");
    assert_eq!(log[1], "/dists/x/InRelease");
    assert_eq!(server.request_records()[1].method, "HEAD");
}

#[test]
fn range_requests() {
    let (dir, data) = fixture();
    let server = start(dir.path());
    let path = "/dists/x/main/Packages.gz";

    let r = get(&server, path, "Range: bytes=600-\r\n").expect("r");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 600-999/1000"));
    assert_eq!(r.header("Content-Length"), Some("400"));
    assert_eq!(r.body, data[600..]);

    let r = get(&server, path, "Range: bytes=10-19\r\n").expect("r");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 10-19/1000"));
    assert_eq!(r.body, data[10..20]);

    let r = get(&server, path, "Range: bytes=-5\r\n").expect("r");
    assert_eq!(r.header("Content-Range"), Some("bytes 995-999/1000"));
    assert_eq!(r.body, data[995..]);

    let r = get(&server, path, "Range: bytes=1000-\r\n").expect("r");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */1000"));

    // A resumed download with a truncation fault still announces its length.
    server.set_fault(path, Fault::Truncate(50));
    let r = get(&server, path, "Range: bytes=900-\r\n").expect("r");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Length"), Some("100"));
    assert_eq!(r.body, data[900..950]);

    let ranges: Vec<_> = server
        .request_records()
        .into_iter()
        .filter_map(|r| r.range)
        .collect();
    assert_eq!(ranges.len(), 5);
    assert_eq!(ranges[0], "bytes=600-");
}

#[test]
fn keep_alive_serves_several_requests_per_connection() {
    let (dir, _) = fixture();
    let server = start(dir.path());
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Two pipelined requests; the second closes the connection.
    s.write_all(
        b"GET /dists/x/InRelease HTTP/1.1\r\nHost: x\r\n\r\nGET /dists/x/InRelease HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(text.matches("signed\n").count(), 2, "{text}");
    assert_eq!(server.requests("InRelease"), 2);
}

#[test]
fn faults() {
    let (dir, data) = fixture();
    let server = start(dir.path());
    let gz = "/dists/x/main/Packages.gz";

    server.set_fault("Packages.gz", Fault::NotFound);
    assert_eq!(get(&server, gz, "").expect("r").status, 404);

    // Replaces the fault for the same suffix.
    server.set_fault("Packages.gz", Fault::Status(503));
    assert_eq!(get(&server, gz, "").expect("r").status, 503);

    server.set_fault("Packages.gz", Fault::Truncate(100));
    let r = get(&server, gz, "").expect("r");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("1000"));
    assert_eq!(r.body, data[..100]);

    server.set_fault("Packages.gz", Fault::Corrupt);
    let r = get(&server, gz, "").expect("r");
    assert_eq!(r.body.len(), data.len());
    assert_ne!(r.body, data);
    assert_eq!(r.body[..400], data[..400]);

    server.set_fault("Packages.gz", Fault::DropConnection);
    assert!(get(&server, gz, "").is_none());

    server.set_fault("Packages.gz", Fault::Delay(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(get(&server, gz, "").expect("r").body, data);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // The longest matching suffix wins; other paths are unaffected.
    server.set_fault("main/Packages.gz", Fault::Status(500));
    assert_eq!(get(&server, gz, "").expect("r").status, 500);
    assert_eq!(
        get(&server, "/dists/x/InRelease", "").expect("r").status,
        200
    );

    server.clear_faults();
    assert_eq!(get(&server, gz, "").expect("r").body, data);

    // A fault for the next N requests only.
    server.set_fault_times("InRelease", Fault::Status(502), 2);
    let statuses: Vec<u16> = (0..3)
        .map(|_| get(&server, "/dists/x/InRelease", "").expect("r").status)
        .collect();
    assert_eq!(statuses, [502, 502, 200]);

    assert_eq!(server.requests("Packages.gz"), 8);
    assert_eq!(server.requests_matching("/main/"), 8);
    server.clear_log();
    assert!(server.request_log().is_empty());
}

#[test]
fn drop_stops_the_server() {
    let (dir, _) = fixture();
    let server = start(dir.path());
    let addr = server.addr();
    drop(server);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

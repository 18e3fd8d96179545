//! A real moto server (`moto_server` from PyPI `moto[server]`, 5.2.5) per test, on
//! 127.0.0.1 and a free port, for the live EC2 paths (DescribeInstanceTypes,
//! DescribeInstanceTypeOfferings, DescribeRegions, ...). moto does not implement the Pricing
//! API (it answers HTTP 500): see `pricing_stub.rs` for that one.
//!
//! The binary is found at `$MOTO_SERVER`, else `<manifest dir>/target/tools/moto/bin/moto_server`
//! (installed by `bash .ci/test`), else `moto_server` on `PATH`.
//!
//! [`Moto::start`] is synchronous (it polls with `std::thread::sleep`), so it works from
//! plain `#[test]`s and from `#[tokio::test(flavor = "multi_thread")]` alike. Dropping the
//! [`Moto`] kills and reaps the server. Its output goes to a log file under
//! `std::env::temp_dir()`; the log is removed on a clean drop and kept (its path printed)
//! when the test is panicking.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Fresh ports tried when the child exits before it is ready (e.g. the port was taken).
const ATTEMPTS: usize = 5;

/// A running `moto_server -H 127.0.0.1 -p PORT`.
pub struct Moto {
    pub port: u16,
    /// The server's stdout and stderr.
    pub log: PathBuf,
    child: Child,
}

impl Moto {
    /// Starts a moto server on a free 127.0.0.1 port and waits (at most 20 s) until it
    /// answers `GET /moto-api/`. Panics, with the tail of the server's log, if it cannot.
    pub fn start() -> Moto {
        let bin = moto_binary();
        let mut failures = Vec::new();
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let log = log_path(port);
            let out = File::create(&log)
                .unwrap_or_else(|e| panic!("cannot create moto log {}: {e}", log.display()));
            let err = out
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot clone moto log handle: {e}"));
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                // No colour codes in the log.
                .env("NO_COLOR", "1")
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));

            match wait_ready(&mut child, port) {
                Ready::Yes => return Moto { port, log, child },
                Ready::Exited(status) => {
                    // Most likely the port was taken between probing and binding: try another.
                    failures.push(format!(
                        "attempt {attempt}: port {port}: moto_server exited early ({status}); log {}:\n{}",
                        log.display(),
                        log_tail(&log)
                    ));
                }
                Ready::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto_server ({}) on 127.0.0.1:{port} did not answer within {:?}; log {}:\n{}",
                        bin.display(),
                        READY_TIMEOUT,
                        log.display(),
                        log_tail(&log)
                    );
                }
            }
        }
        panic!(
            "moto_server ({}) failed to start {ATTEMPTS} times:\n{}",
            bin.display(),
            failures.join("\n")
        );
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last few KiB of the server's log (for assertion messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("moto_server log kept at {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

enum Ready {
    Yes,
    Exited(std::process::ExitStatus),
    TimedOut,
}

fn wait_ready(child: &mut Child, port: u16) -> Ready {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ready::Exited(status);
        }
        if answers_http(addr) {
            return Ready::Yes;
        }
        if Instant::now() >= deadline {
            return Ready::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when `GET /moto-api/` gets an HTTP status line back.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    head[..got].starts_with(b"HTTP/1.")
}

/// Binds 127.0.0.1:0, reads the port the kernel chose and releases it.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

fn log_path(port: u16) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "gpu-slicer-moto-{}-{seq}-{nanos}-{port}.log",
        std::process::id()
    ))
}

/// The moto_server binary: `$MOTO_SERVER`, else the one `.ci/test` installs, else `PATH`.
pub fn moto_binary() -> PathBuf {
    const MISSING: &str = "moto_server not found: run `bash .ci/test` (installs moto into target/tools/moto) or set MOTO_SERVER";
    if let Some(path) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return path;
        }
        panic!("{MISSING} (MOTO_SERVER={} does not exist)", path.display());
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/moto/bin/moto_server");
    if local.is_file() {
        return local;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("{MISSING}");
}

/// The last 4 KiB of a log file, lossily decoded.
fn log_tail(path: &Path) -> String {
    const TAIL: u64 = 4096;
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if text.trim().is_empty() {
        "(empty log)".to_string()
    } else {
        text
    }
}

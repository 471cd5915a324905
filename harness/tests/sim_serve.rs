//! `cachescope sim --serve ADDR`: the run in progress is served live, its
//! final counters reach `/metrics`, and the server keeps serving after the
//! run until stopped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn sim_serves_its_run_live() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/default.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cachescope"))
        .args(["sim", "--trace", spec, "--policy", "lru,s3fifo", "--size", "1%", "--quiet", "--serve", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Poll until both runs' final counters are exported (1,000,000 requests each).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    let done = loop {
        if let Some(body) = get(&addr, "/metrics") {
            let finals =
                body.lines().filter(|l| l.starts_with("cachescope_requests_total") && l.ends_with(" 1000000")).count();
            if finals == 2 {
                break true;
            }
            last = body;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::yield_now();
    };
    let page = get(&addr, "/");
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "the final counters of both runs never reached /metrics; last scrape:\n{last}");
    let page = page.expect("the page is served after the run");
    assert!(page.contains("200 OK") && page.contains("lru"), "{page}");
}

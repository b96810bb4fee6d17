//! Shared by the `ops_*` tests: a running `fundwatch demo` process (its HTTP
//! listener on a free port), HTTP GETs, Prometheus text parsing, and the metric
//! names documented in docs/metrics.md.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;

use crate::http_support::{self, Reply};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `GET path` on `addr`, no key.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    http_support::call(addr, Method::GET, path, None, None).await
}

/// A `fundwatch demo` child process; SIGKILLed on drop if still running.
pub struct Demo {
    child: Child,
    /// Where its HTTP service listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts the demo paced at `rate` events/s for at most `duration`, on a
    /// free port, and waits (≤ 180 s: the KB load and the pack compile in a debug
    /// build) until it prints its URL.
    pub fn start(rate: u32, duration: &str) -> Demo {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fundwatch"))
            .current_dir(repo())
            .args(["demo", "--listen", "127.0.0.1:0", "--duration", duration])
            .args(["--rate", &rate.to_string(), "--batch", "64"])
            .arg("--output")
            .arg(dir.path().join("alerts.ndjson"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fundwatch demo starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        {
            let pipe = child.stderr.take().expect("stderr piped");
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(addr) = line
                        .split("on http://")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                    {
                        let _ = tx.send(addr);
                    }
                    let mut all = stderr.lock().expect("stderr lock");
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        {
            let pipe = child.stdout.take().expect("stdout piped");
            let stdout = Arc::clone(&stdout);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut all = stdout.lock().expect("stdout lock");
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the demo printed no HTTP URL within 180 s; stderr:\n{}",
                    stderr.lock().expect("stderr lock")
                );
            }
        };
        Demo {
            child,
            addr,
            stderr,
            stdout,
            _dir: dir,
        }
    }

    /// What the demo wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// What the demo wrote to stdout so far (the final summary).
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout lock").clone()
    }

    /// Sends SIGTERM and waits (≤ 60 s) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not exit within 60 s of SIGTERM; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Metric family names in a Prometheus text exposition (`# TYPE` lines).
pub fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The value of the sample `series` (name with labels exactly as exposed), if any.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Sum of every sample of `family` (all label sets).
pub fn sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Label names used in the exposition.
pub fn label_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(labels) = line.split_once('{').and_then(|(_, r)| r.split_once('}')) else {
            continue;
        };
        for pair in labels.0.split("\",") {
            if let Some((name, _)) = pair.split_once('=') {
                out.insert(name.trim().to_string());
            }
        }
    }
    out
}

/// Metric names documented in docs/metrics.md (table rows starting with
/// `` | `fundwatch_… ``).
pub fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("fundwatch_"))
        .map(str::to_string)
        .collect()
}

/// Reads a file of the repository.
pub fn read(path: impl AsRef<Path>) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

//! kill -9 in the middle of a stateful `fundwatch check --state`, then restart:
//! the alerts equal those of an uninterrupted run (duplicates of the replayed batch
//! carry the same jr_id). The stream is built so that most alerts depend on history
//! from earlier events (a 14-day payment-course drug given daily), so a restart that
//! lost or double-applied state would change the alerts.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PERSONS: usize = 150;
const DAYS: usize = 40;

fn stream() -> String {
    let mut out = String::new();
    for (_, event) in crate::support::daily_course_events(PERSONS, DAYS, "") {
        out.push_str(&event.to_string());
        out.push('\n');
    }
    out
}

fn check(input: &Path, output: &Path, state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fundwatch"));
    cmd.args(["check", "--batch", "32", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .arg("--state")
        .arg(state);
    cmd
}

fn unique_lines(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .expect("alerts file")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn kill_9_and_restart_gives_the_uninterrupted_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, stream()).expect("write input");

    // Uninterrupted reference run.
    let reference = dir.path().join("reference.ndjson");
    let status = check(&input, &reference, &dir.path().join("ref-state"))
        .stderr(Stdio::null())
        .status()
        .expect("reference run");
    assert!(status.success());
    let expected = unique_lines(&reference);
    assert!(
        expected.len() > PERSONS * 10,
        "the stream should produce history-dependent alerts, got {}",
        expected.len()
    );

    // Crashing run: kill -9 once some alerts are out.
    let output = dir.path().join("crashed.ndjson");
    let state = dir.path().join("state");
    let mut child = check(&input, &output, &state)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written = std::fs::read(&output).map(|b| b.iter().filter(|c| **c == b'\n').count());
        if written.unwrap_or(0) >= 200 {
            break;
        }
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the run finished before it could be killed; make the stream longer"
        );
        assert!(Instant::now() < deadline, "no alerts appeared within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9"); // SIGKILL on Unix
    child.wait().expect("reap");

    // Restart with the same arguments: resumes after the recorded position.
    let restarted = check(&input, &output, &state).output().expect("restart");
    let stderr = String::from_utf8_lossy(&restarted.stderr);
    assert!(restarted.status.success(), "{stderr}");
    assert!(stderr.contains("resuming after input line"), "{stderr}");

    let got = unique_lines(&output);
    let missing: Vec<&String> = expected.difference(&got).take(3).collect();
    let extra: Vec<&String> = got.difference(&expected).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
}

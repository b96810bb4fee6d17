//! A real Kafka-protocol broker for the tests: `tansu` 0.6.0 on a free
//! 127.0.0.1 port with `memory://` storage, started and stopped by the test.
//!
//! The binary is `$TANSU_BIN`, else `tansu` on `PATH`, else `~/.cargo/bin/tansu`.
//! When it is missing the test FAILS saying how to install it (scripts/test.sh
//! and .ci/run install it); it never skips silently.
//!
//! tansu does not create topics on first use: [`Broker::create_topic`] does it
//! through rdkafka's admin client. Its memory storage forgets everything on a
//! restart (topics, offsets, groups), and its reported high watermark is not
//! reliable there, so tests never assert lag against it.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The tansu version the tests are written against.
pub const TANSU_VERSION: &str = "0.6.0";

const INSTALL_HINT: &str = "install it with `cargo install tansu --version 0.6.0 --locked --features dynostore` (scripts/test.sh does this), or point TANSU_BIN at the binary";

/// A running tansu broker; stopped on drop.
pub struct Broker {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    log_dir: tempfile::TempDir,
    starts: u32,
}

impl Broker {
    /// Starts tansu on a free port and waits until it answers metadata requests
    /// (blocking; from a multi-threaded tokio test).
    pub fn start() -> Broker {
        tokio::task::block_in_place(Self::start_blocking)
    }

    fn start_blocking() -> Broker {
        let binary = tansu_binary();
        let port = free_port();
        let log_dir = tempfile::tempdir().expect("temp dir for the broker log");
        let mut broker = Broker {
            binary,
            port,
            child: None,
            log_dir,
            starts: 0,
        };
        broker.spawn();
        broker
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (SIGKILL) and starts it again on the same port. Memory
    /// storage: topics and committed offsets are gone afterwards.
    pub fn restart(&mut self) {
        tokio::task::block_in_place(|| {
            self.kill();
            self.spawn();
        });
    }

    /// Creates `topic` with `partitions` partitions and waits until the broker's
    /// metadata shows all of them.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("admin client");
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&new], &options)
            .await
            .unwrap_or_else(|err| panic!("creating topic {topic} on tansu: {err}"));
        for result in results {
            if let Err((name, code)) = result {
                panic!("tansu refused to create topic {name}: {code}");
            }
        }
        let probe = self.metadata_client();
        let topic = topic.to_string();
        tokio::task::block_in_place(|| {
            wait_until(
                Duration::from_secs(20),
                &format!("topic {topic} visible"),
                || {
                    probe
                        .fetch_metadata(Some(&topic), Duration::from_secs(2))
                        .ok()
                        .and_then(|md| {
                            md.topics().iter().find(|t| t.name() == topic).map(|t| {
                                t.error().is_none() && t.partitions().len() == partitions as usize
                            })
                        })
                        .unwrap_or(false)
                },
            )
        });
    }

    /// The last lines of the broker's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for start in 1..=self.starts {
            let text = std::fs::read_to_string(self.log_path(start)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            out.push_str(&format!(
                "--- tansu run {start} ---\n{}\n",
                lines[from..].join("\n")
            ));
        }
        out
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.log_dir.path().join(format!("tansu-{start}.log"))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("broker log file");
        let err_log = log.try_clone().expect("broker log file");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {}: {err}; {INSTALL_HINT}",
                    self.binary.display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        // The port first, then a metadata round trip.
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu exited at start ({status}) on port {}:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on port {} within 30 s:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let probe = self.metadata_client();
        let tail = self.log_tail();
        wait_until(
            Duration::from_secs(30),
            &format!("tansu metadata ({tail})"),
            || probe.fetch_metadata(None, Duration::from_secs(2)).is_ok(),
        );
    }

    fn metadata_client(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("metadata client")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds tansu 0.6.0 or panics with how to install it.
pub fn tansu_binary() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .map(|path| {
                    std::env::split_paths(&path)
                        .map(|d| d.join("tansu"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .chain(std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin/tansu")))
        .collect();
    let Some(binary) = candidates.into_iter().find(|p| p.is_file()) else {
        panic!(
            "the Kafka tests need the tansu broker, which was not found (TANSU_BIN, PATH, ~/.cargo/bin); {INSTALL_HINT}"
        );
    };
    let version = Command::new(&binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {} --version: {err}; {INSTALL_HINT}",
                binary.display()
            )
        });
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        text.contains(TANSU_VERSION),
        "{} reports version {:?}, the tests need {TANSU_VERSION}; {INSTALL_HINT}",
        binary.display(),
        text.trim()
    );
    binary
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound address").port()
}

/// Polls `condition` until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

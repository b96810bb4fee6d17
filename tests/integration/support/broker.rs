//! A real Kafka-protocol broker for the tests: `tansu` 0.6.0 on 127.0.0.1 with
//! `memory://` storage, started and stopped by the test.
//!
//! The binary is `$TANSU_BIN`, else `tansu` on `PATH`, else `~/.cargo/bin/tansu`.
//! When it is missing the test FAILS saying how to install it (scripts/test.sh
//! and .ci/run install it); it never skips silently.
//!
//! tansu does not create topics on first use: [`Broker::create_topic`] does it
//! through rdkafka's admin client. Its memory storage forgets everything on a
//! restart (topics, offsets, groups), and its reported high watermark is not
//! reliable there, so tests never assert lag against it.
//!
//! Clients reach tansu through a forwarding port of the test's own (the port in
//! [`Broker::bootstrap`], which tansu advertises), so [`Broker::outage`] can take
//! the broker away from every client and bring it back with its state, as a
//! broker restart looks to them.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    /// The port clients use (the forwarder's), advertised by tansu.
    port: u16,
    /// tansu's own port.
    internal_port: u16,
    child: Option<Child>,
    log_dir: tempfile::TempDir,
    starts: u32,
    forwarder: Forwarder,
}

impl Broker {
    /// Starts tansu on a free port and waits until it answers metadata requests
    /// (blocking; from a multi-threaded tokio test).
    pub fn start() -> Broker {
        let handle = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| Self::start_blocking(&handle))
    }

    fn start_blocking(handle: &tokio::runtime::Handle) -> Broker {
        let binary = tansu_binary();
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound address").port();
        let internal_port = free_port();
        let log_dir = tempfile::tempdir().expect("temp dir for the broker log");
        let forwarder = Forwarder::start(handle, listener, internal_port);
        let mut broker = Broker {
            binary,
            port,
            internal_port,
            child: None,
            log_dir,
            starts: 0,
            forwarder,
        };
        broker.forwarder.open();
        broker.spawn();
        broker
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Makes the broker unreachable for `duration`, as a restart looks to its
    /// clients: every connection is cut and new ones are refused; then it is back
    /// with its state (topics, logs, committed offsets, groups, producer ids), as a
    /// Kafka broker comes back from a restart. Longer than `session.timeout.ms`,
    /// the group coordinator has dropped the members by then.
    ///
    /// (Not a restart of the tansu process: on memory storage that loses every
    /// topic, and tansu then answers a fetch naming the old topic id with leader
    /// information and a zero topic id, which crashes librdkafka 2.12.1 —
    /// `rd_kafka_metadata_update_op` looks the topic up by a NULL name. See
    /// docs/kafka.md, "What tansu cannot do".)
    pub async fn outage(&self, duration: Duration) {
        self.forwarder.close();
        tokio::time::sleep(duration).await;
        self.forwarder.open();
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
            let from = lines.len().saturating_sub(60);
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
        let listen = format!("tcp://127.0.0.1:{}", self.internal_port);
        let advertised = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &listen,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
            ])
            // FUNDWATCH_TEST_TANSU_LOG=debug shows the broker's side (the log is in
            // the failure message's tail).
            .env(
                "RUST_LOG",
                std::env::var("FUNDWATCH_TEST_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
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
        while TcpStream::connect(("127.0.0.1", self.internal_port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu exited at start ({status}) on port {}:\n{}",
                    self.internal_port,
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on port {} within 30 s:\n{}",
                self.internal_port,
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
        self.forwarder.stop();
        self.kill();
    }
}

/// The clients' port: forwards each connection to tansu while open; while
/// closed, cuts every forwarded connection and turns new ones away (a broker that
/// is down, as clients see it).
struct Forwarder {
    open: Arc<AtomicBool>,
    /// Bumped on every close: forwarded connections end when it changes.
    epoch: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Forwarder {
    fn start(handle: &tokio::runtime::Handle, listener: TcpListener, upstream_port: u16) -> Self {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let open = Arc::new(AtomicBool::new(false));
        let (epoch, _) = watch::channel(0u64);
        let accepting = Arc::clone(&open);
        let epochs = epoch.clone();
        let task = handle.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("forwarder listener");
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !accepting.load(Ordering::SeqCst) {
                    drop(client); // broker down
                    continue;
                }
                let mut closed = epochs.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = closed.changed() => {}
                    }
                });
            }
        });
        Self { open, epoch, task }
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    fn stop(&self) {
        self.close();
        self.task.abort();
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

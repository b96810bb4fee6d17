//! `loadgen`: HTTP load against `fundwatch serve` — a 30-order inpatient 3101 over
//! loopback, at a fixed rate (coordinated-omission safe) or closed-loop saturation.
//!
//! Fixed rate: request *i* is due at `start + i / rate`; connections take the next
//! due request, wait for its time and send it. A request that could not be sent
//! on time (every connection busy) is measured from when it was *due*, so a stall
//! shows in the percentiles instead of silently lowering the rate (Gil Tene's
//! coordinated omission). Saturation: every connection sends back to back.
//!
//! Reported per run: server-side latency (`X-FundWatch-Server-Us`: request head to
//! response inside the server), client latency (send → full response) and, at a
//! fixed rate, latency from the due time; engine time per batch
//! (`X-FundWatch-Eval-Us`) and batch size (`X-FundWatch-Batch`); outcomes (checked,
//! skipped fail-open, shed 503, errors) and throughput.
//!
//! ```sh
//! fundwatch serve --config deploy/config/fundwatch.example.toml &
//! loadgen --rate 1000 --duration 30s
//! loadgen --saturate --connections 64 --duration 30s
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Load generator for the FundWatch inline HTTP service.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Path to post to.
    #[arg(long, default_value = "/fsi/3101")]
    path: String,
    /// Institution key (the example config's demo key by default).
    #[arg(long, default_value = "demo-key-H43079600001")]
    key: String,
    /// Requests per second (fixed-rate mode).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Closed-loop saturation instead of a fixed rate.
    #[arg(long)]
    saturate: bool,
    /// Connections (keep-alive, HTTP/1.1).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured duration, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// Orders in the request (the first third are checked, the rest context).
    #[arg(long, default_value_t = 30)]
    orders: usize,
    /// Post this file instead of the generated request.
    #[arg(long)]
    body: Option<std::path::PathBuf>,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 30s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// One worker's measurements.
struct Stats {
    server_us: Histogram<u64>,
    client_us: Histogram<u64>,
    due_us: Histogram<u64>,
    eval_us: Histogram<u64>,
    batch: Histogram<u64>,
    checked: u64,
    alerts: u64,
    skipped: u64,
    shed: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn new() -> Self {
        let histogram = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
        Self {
            server_us: histogram(),
            client_us: histogram(),
            due_us: histogram(),
            eval_us: histogram(),
            batch: histogram(),
            checked: 0,
            alerts: 0,
            skipped: 0,
            shed: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in [
            (&mut self.server_us, &other.server_us),
            (&mut self.client_us, &other.client_us),
            (&mut self.due_us, &other.due_us),
            (&mut self.eval_us, &other.eval_us),
            (&mut self.batch, &other.batch),
        ] {
            let _ = a.add(b);
        }
        self.checked += other.checked;
        self.alerts += other.alerts;
        self.skipped += other.skipped;
        self.shed += other.shed;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    fn answered(&self) -> u64 {
        self.checked + self.skipped + self.shed + self.errors
    }
}

/// Shared schedule.
struct Plan {
    args: Args,
    body: Bytes,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    next: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.saturate && (args.rate.is_nan() || args.rate <= 0.0) {
        bail!("--rate must be positive (or use --saturate)");
    }
    let body = match &args.body {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => serde_json::to_vec(&inpatient_request(args.orders))?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args, Bytes::from(body)))
}

async fn run(args: Args, body: Bytes) -> anyhow::Result<()> {
    // One probe request: the server is up, the key works, and how many alerts.
    let mut probe = connect(args.addr).await?;
    let probe_reply = send(&mut probe, &args, body.clone()).await?;
    if probe_reply.status != 200 {
        bail!(
            "probe request answered {}: {}",
            probe_reply.status,
            String::from_utf8_lossy(&probe_reply.body)
        );
    }
    let probe_json: Value = serde_json::from_slice(&probe_reply.body).unwrap_or(Value::Null);
    let alerts = probe_json["output"]["result"]
        .as_array()
        .map_or(0, Vec::len);
    let rules: Vec<&str> = probe_json["output"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["rule_id"].as_str())
        .collect();
    eprintln!(
        "request: {} bytes, {} orders; it gets {alerts} alerts ({})",
        body.len(),
        args.orders,
        rules.join(", ")
    );
    drop(probe);

    let start = Instant::now() + Duration::from_millis(50);
    let plan = Arc::new(Plan {
        start,
        measure_from: start + args.warmup,
        end: start + args.warmup + args.duration,
        next: AtomicU64::new(0),
        body,
        args,
    });
    let mut workers = Vec::new();
    for _ in 0..plan.args.connections {
        let plan = Arc::clone(&plan);
        workers.push(tokio::spawn(async move { worker(plan).await }));
    }
    let mut total = Stats::new();
    for worker in workers {
        let stats = worker.await??;
        total.merge(&stats);
    }
    report(&plan, &total);
    Ok(())
}

async fn worker(plan: Arc<Plan>) -> anyhow::Result<Stats> {
    let args = &plan.args;
    let mut stats = Stats::new();
    let mut conn = connect(args.addr).await?;
    let period = if args.saturate {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(1.0 / args.rate)
    };
    loop {
        let due = if args.saturate {
            let now = Instant::now();
            if now < plan.start {
                tokio::time::sleep_until(plan.start.into()).await;
            }
            Instant::now()
        } else {
            let i = plan.next.fetch_add(1, Ordering::Relaxed);
            let due = plan.start + period.mul_f64(i as f64);
            if due >= plan.end {
                break;
            }
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
            due
        };
        if due >= plan.end {
            break;
        }
        let sent = Instant::now();
        let reply = match send(&mut conn, args, plan.body.clone()).await {
            Ok(reply) => reply,
            Err(err) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| err.to_string());
                conn = connect(args.addr).await?;
                continue;
            }
        };
        let done = Instant::now();
        if due < plan.measure_from {
            continue;
        }
        let micros = |d: Duration| (d.as_micros() as u64).max(1);
        let _ = stats.client_us.record(micros(done - sent));
        let _ = stats.due_us.record(micros(done - due));
        if let Some(us) = reply.server_us {
            let _ = stats.server_us.record(us.max(1));
        }
        match reply.status {
            200 if reply.skipped => stats.skipped += 1,
            200 => {
                stats.checked += 1;
                stats.alerts += count_alerts(&reply.body);
                if let Some(us) = reply.eval_us {
                    let _ = stats.eval_us.record(us.max(1));
                }
                if let Some(n) = reply.batch {
                    let _ = stats.batch.record(n.max(1));
                }
            }
            503 => stats.shed += 1,
            status => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| {
                    format!("HTTP {status}: {}", String::from_utf8_lossy(&reply.body))
                });
            }
        }
    }
    Ok(stats)
}

/// Counts `"jr_id"` occurrences: cheaper than parsing every answer.
fn count_alerts(body: &[u8]) -> u64 {
    body.windows(7).filter(|w| *w == b"\"jr_id\"").count() as u64
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}: is `fundwatch serve` running?"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

struct Reply {
    status: u16,
    body: Bytes,
    server_us: Option<u64>,
    eval_us: Option<u64>,
    batch: Option<u64>,
    skipped: bool,
}

async fn send(conn: &mut Sender, args: &Args, body: Bytes) -> anyhow::Result<Reply> {
    conn.ready().await?;
    let request = Request::post(args.path.as_str())
        .header("host", args.addr.to_string())
        .header("content-type", "application/json")
        .header("x-fundwatch-key", args.key.as_str())
        .body(Full::new(body))?;
    let response = conn.send_request(request).await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let server_us = header("x-fundwatch-server-us");
    let eval_us = header("x-fundwatch-eval-us");
    let batch = header("x-fundwatch-batch");
    let skipped = response.headers().contains_key("x-fundwatch-skipped");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body,
        server_us,
        eval_us,
        batch,
        skipped,
    })
}

fn report(plan: &Plan, stats: &Stats) {
    let args = &plan.args;
    let seconds = args.duration.as_secs_f64();
    let throughput = stats.answered() as f64 / seconds;
    let pct = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let line = |name: &str, h: &Histogram<u64>| {
        println!(
            "  {name:<28} p50 {:>8.3} ms  p90 {:>8.3}  p99 {:>8.3}  p99.9 {:>8.3}  max {:>8.3}",
            pct(h, 0.5),
            pct(h, 0.9),
            pct(h, 0.99),
            pct(h, 0.999),
            if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1000.0
            }
        );
    };
    println!(
        "{} {} for {:.0} s ({:.0} s warm-up), {} connections, {}:",
        if args.saturate {
            "saturation"
        } else {
            "fixed rate"
        },
        if args.saturate {
            String::new()
        } else {
            format!("{} req/s", args.rate)
        },
        seconds,
        args.warmup.as_secs_f64(),
        args.connections,
        args.path
    );
    println!(
        "  throughput {throughput:.0} req/s; checked {}, skipped (fail-open) {}, shed (503) {}, errors {}; {:.1} alerts per checked request",
        stats.checked,
        stats.skipped,
        stats.shed,
        stats.errors,
        if stats.checked > 0 {
            stats.alerts as f64 / stats.checked as f64
        } else {
            0.0
        }
    );
    line("server-side (header)", &stats.server_us);
    line("client (send→response)", &stats.client_us);
    if !args.saturate {
        line("from due time (CO-safe)", &stats.due_us);
    }
    line("engine call per batch", &stats.eval_us);
    println!(
        "  batch size                   mean {:.1}  p50 {}  p99 {}  max {}",
        stats.batch.mean(),
        stats.batch.value_at_quantile(0.5),
        stats.batch.value_at_quantile(0.99),
        stats.batch.max()
    );
    if let Some(err) = &stats.first_error {
        println!("  first error: {err}");
    }
    if args.json {
        let summary = json!({
            "mode": if args.saturate { "saturate" } else { "rate" },
            "rate": if args.saturate { Value::Null } else { json!(args.rate) },
            "connections": args.connections,
            "seconds": seconds,
            "throughput": throughput,
            "checked": stats.checked, "skipped": stats.skipped, "shed": stats.shed, "errors": stats.errors,
            "server_ms": {"p50": pct(&stats.server_us, 0.5), "p99": pct(&stats.server_us, 0.99), "p999": pct(&stats.server_us, 0.999)},
            "client_ms": {"p50": pct(&stats.client_us, 0.5), "p99": pct(&stats.client_us, 0.99)},
            "due_ms": {"p50": pct(&stats.due_us, 0.5), "p99": pct(&stats.due_us, 0.99)},
            "eval_ms": {"p50": pct(&stats.eval_us, 0.5), "p99": pct(&stats.eval_us, 0.99)},
            "batch_mean": stats.batch.mean(),
        });
        println!("{summary}");
    }
}

/// A 30-order inpatient 3101 (事前, 住院收费登记) in the national envelope: the
/// DOMAIN B.1 patient and stay, with orders taken from the national pack's own test
/// cases (distinct national codes, so many rule classes look at the request); the
/// first third are the orders being checked, the rest are the stay's context.
fn inpatient_request(n_orders: usize) -> Value {
    let pack = fundwatch_benches::national_pack();
    let mut pool: Vec<Value> = vec![
        json!({"hilist_code": "XG02BAZ061Z007010279543", "hilist_name": "左炔诺孕酮宫内节育系统",
               "hilist_type": "101", "chrg_type": "09", "cnt": 1, "pric": 1153}),
        json!({"hilist_code": "XA11DAW036A001010104127", "hilist_name": "维生素B1片",
               "hilist_type": "101", "chrg_type": "09", "cnt": 1, "pric": 0.1}),
    ];
    let mut diagnoses = vec!["M10.002".to_string()];
    for event in fundwatch_benches::case_json(&pack) {
        let Some(patient) = event.pointer("/patient_dtos/0") else {
            continue;
        };
        let current = patient["curr_mdtrt_id"].clone();
        for encounter in patient["fsi_encounter_dtos"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if encounter["mdtrt_id"] != current {
                continue;
            }
            for order in encounter["fsi_order_dtos"].as_array().into_iter().flatten() {
                let code = &order["hilist_code"];
                if !pool.iter().any(|o| o["hilist_code"] == *code) {
                    pool.push(order.clone());
                }
            }
            for diagnosis in encounter["fsi_diagnose_dtos"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(code) = diagnosis["dise_codg"].as_str()
                    && diagnoses.len() < 4
                    && !diagnoses.iter().any(|d| d == code)
                {
                    diagnoses.push(code.to_string());
                }
            }
        }
    }
    let checked = n_orders.div_ceil(3);
    let orders: Vec<Value> = (0..n_orders)
        .map(|i| {
            let mut order = pool[i % pool.len()].clone();
            let current = i < checked;
            let day = 4 + (i % 10);
            if let Some(obj) = order.as_object_mut() {
                obj.insert("rx_id".into(), json!(format!("RX-{:03}", i + 1)));
                obj.insert("rxno".into(), json!(format!("IP2025061400{:05}", i + 1)));
                obj.insert(
                    "long_drord_flag".into(),
                    json!(if i % 2 == 0 { "1" } else { "0" }),
                );
                obj.insert(
                    "curr_drord_flag".into(),
                    json!(if current { "1" } else { "0" }),
                );
                obj.insert(
                    "drord_begn_date".into(),
                    json!(if current {
                        "2025-06-14 14:25:52".to_string()
                    } else {
                        format!("2025-05-{day:02} 09:00:00")
                    }),
                );
                obj.insert("drord_dept_codg".into(), json!("100309"));
                obj.insert("drord_dr_codg".into(), json!("D430796000001"));
            }
            order
        })
        .collect();
    let diagnoses: Vec<Value> = diagnoses
        .iter()
        .enumerate()
        .map(|(i, code)| {
            json!({"dise_id": (i + 1).to_string(), "inout_dise_type": "1",
                   "maindise_flag": if i == 0 { "1" } else { "0" }, "dias_srt_no": i + 1,
                   "dise_codg": code, "dise_date": "2025-05-04 11:00:00"})
        })
        .collect();
    // Built in parts: one json! this deep exceeds the macro recursion limit.
    let encounter = json!({
        "mdtrt_id": "M0001", "medins_id": "H43079600001", "medins_admdvs": "430796",
        "medins_type": "A", "medins_lv": "3", "adm_date": "2025-05-04 10:59:45",
        "dscg_date": null, "dscg_main_dise_codg": "M10.002",
        "dscg_main_dise_name": "痛风性关节炎", "med_mdtrt_type": "2", "med_type": "21",
        "matn_stas": "0", "insutype": "390",
        "fsi_diagnose_dtos": diagnoses,
        "fsi_operation_dtos": [],
        "fsi_order_dtos": orders
    });
    let patient = json!({
        "patn_id": "P0001", "patn_name": "患者甲", "gend": "1", "brdy": "1951-08-27",
        "poolarea": "430796", "curr_mdtrt_id": "M0001",
        "fsi_encounter_dtos": [encounter]
    });
    let data = json!({
        "syscode": "IMS", "task_id": "T-LOAD", "trig_scen": "4", "rule_ids": [],
        "patient_dtos": [patient]
    });
    json!({
        "infno": "3101", "msgid": "H43079600001202506141427240001",
        "mdtrtarea_admvs": "430799", "insuplc_admdvs": "430796", "recer_sys_code": "IMS",
        "infver": "V1.0", "opter_type": "1", "opter": "D430796000001", "opter_name": "医生A",
        "inf_time": "2025-06-14 14:27:24", "fixmedins_code": "H43079600001",
        "fixmedins_name": "示例医院", "sign_no": "",
        "input": {"data": data}
    })
}

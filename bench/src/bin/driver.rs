//! `bench-driver`: runs the benchmark of issue #19 and prints its tables (`scripts/bench`).
//!
//! For each prefetch and delivery mode, each run, each target in turn (our worker, sailor-nodejs
//! 2.7.8, the bare loop): a fresh exchange and queues, `--messages` encrypted inputs pre-loaded,
//! the target started, every output collected, the process's `/proc` read at the first and the
//! last output, every output verified against its input. Then a size sweep, a refresh storm,
//! and the start-up times seen in the runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench::{Cipher, Verdict};
use clap::{Parser, ValueEnum};
use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::io::AsyncBufReadExt as _;

/// What runs the `request` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Target {
    /// `component worker`, the binary next to this one.
    Ours,
    /// sailor-nodejs 2.7.8 running the interop fixture's `request` action.
    Sailor,
    /// `bench-loop`, the bare hand-written loop.
    Loop,
    /// `bench-loop --connections 2`: the loop publishing on a connection of its own, as both
    /// sailors and the worker do (a publisher blocked by the broker then never holds up the
    /// consumer's acks).
    Loop2,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Ours => "ours",
            Target::Sailor => "sailor-nodejs",
            Target::Loop => "bare loop",
            Target::Loop2 => "bare loop, 2 connections",
        }
    }
}

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// The main table: every target, prefetch and mode.
    Table,
    /// Our worker and the loop over input sizes.
    Sweep,
    /// 1,000 concurrent calls on an expired token.
    Storm,
}

#[derive(Debug, Parser)]
#[command(about = "The worker's throughput against sailor-nodejs and a bare loop (issue #19).")]
struct Args {
    /// Inputs per run.
    #[arg(long, default_value_t = 10000)]
    messages: u64,
    /// Runs per cell; the table shows their medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Prefetches to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    prefetch: Vec<u16>,
    /// Delivery modes: transient or persistent (durable queues, delivery mode 2 both ways).
    #[arg(long, value_delimiter = ',', default_value = "transient,persistent")]
    modes: Vec<String>,
    /// Targets, in the order they run within a run.
    #[arg(long, value_delimiter = ',', default_value = "ours,sailor,loop,loop2")]
    targets: Vec<Target>,
    /// Bytes of each input's JSON body in the table (640: about 0.9 KB on the wire).
    #[arg(long, default_value_t = 640)]
    size: usize,
    /// Body sizes of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "256,1024,4096,65536")]
    sizes: Vec<usize>,
    /// Parts to run.
    #[arg(long, value_delimiter = ',', default_value = "table,sweep,storm")]
    parts: Vec<Part>,
    /// Concurrent calls of the refresh storm.
    #[arg(long, default_value_t = 1000)]
    storm_calls: usize,
    /// The short form scripts/test runs: 300 messages, one run at prefetch 16, transient,
    /// every target; a 100-call storm; no sweep. Checks outputs, asserts no timing.
    #[arg(long)]
    smoke: bool,
    /// The broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// Where `component`, `bench-loop` and `bench-api` are (default: this binary's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// One measured run of one target.
#[derive(Debug, Clone, Default)]
struct Sample {
    rate: f64,
    cpu_per_1000: f64,
    peak_rss_mib: f64,
    startup_ms: f64,
    good: u64,
    expected: u64,
}

/// What the whole benchmark shares.
struct Bed {
    amqp: String,
    api: String,
    bin_dir: PathBuf,
    node_dir: PathBuf,
    channel: Channel,
    cipher: Cipher,
    problems: Mutex<Vec<String>>,
}

/// One run's names on the broker.
struct Names {
    id: String,
    exchange: String,
    input: String,
    output: String,
}

impl Names {
    fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Self {
            exchange: format!("bench-{id}"),
            input: format!("bench-{id}.in"),
            output: format!("bench-{id}.out"),
            id,
        }
    }

    fn key(&self, kind: &str) -> String {
        format!("{}.{kind}", self.id)
    }

    fn keys_exchange(&self) -> String {
        format!("{}.keys", self.exchange)
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

impl Bed {
    async fn declare(&self, names: &Names, persistent: bool) -> anyhow::Result<()> {
        let ch = &self.channel;
        ch.exchange_declare(
            names.exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: persistent,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        // Queues left behind by a killed driver go after 10 minutes unused.
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(600_000));
        for queue in [&names.input, &names.output] {
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: persistent,
                    ..Default::default()
                },
                args.clone(),
            )
            .await?;
        }
        for kind in ["data", "error", "rebound"] {
            ch.queue_bind(
                names.output.as_str().into(),
                names.exchange.as_str().into(),
                names.key(kind).as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }

    async fn delete(&self, names: &Names) {
        let ch = &self.channel;
        let last = format!("{}.last.{}", names.keys_exchange(), names.exchange);
        for queue in [&names.input, &names.output, &last] {
            let _ = ch
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [&names.exchange, &names.keys_exchange()] {
            let _ = ch
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }

    /// Publishes inputs `0..n` to the input queue and waits for the broker's confirms.
    async fn preload(
        &self,
        connection: &Connection,
        names: &Names,
        n: u64,
        size: usize,
        persistent: bool,
    ) -> anyhow::Result<()> {
        let ch = connection.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let mut confirms = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut headers = FieldTable::default();
            headers.insert("messageId".into(), text(&format!("in-{i}")));
            let properties = BasicProperties::default()
                .with_headers(headers)
                .with_delivery_mode(if persistent { 2 } else { 1 });
            let body = self.cipher.encode(&bench::input_message(i, size));
            confirms.push(
                ch.basic_publish(
                    "".into(),
                    names.input.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?,
            );
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "the broker nacked an input");
        }
        let _ = ch.close(200, "preloaded".into()).await;
        Ok(())
    }

    /// The step's environment, as the platform sets it for either sailor.
    fn env(&self, names: &Names, prefetch: u16, persistent: bool) -> Vec<(String, String)> {
        [
            ("ELASTICIO_AMQP_URI", self.amqp.clone()),
            ("ELASTICIO_LISTEN_MESSAGES_ON", names.input.clone()),
            ("ELASTICIO_PUBLISH_MESSAGES_TO", names.exchange.clone()),
            ("ELASTICIO_DATA_ROUTING_KEY", names.key("data")),
            ("ELASTICIO_ERROR_ROUTING_KEY", names.key("error")),
            ("ELASTICIO_REBOUND_ROUTING_KEY", names.key("rebound")),
            ("ELASTICIO_SNAPSHOT_ROUTING_KEY", names.key("snapshot")),
            ("ELASTICIO_UPDATE_KEYS_ROUTING_KEY", names.key("keys")),
            (
                "ELASTICIO_MESSAGE_CRYPTO_PASSWORD",
                bench::CRYPTO_PASSWORD.into(),
            ),
            ("ELASTICIO_MESSAGE_CRYPTO_IV", bench::CRYPTO_IV.into()),
            ("ELASTICIO_FUNCTION", "request".into()),
            ("ELASTICIO_FLOW_ID", names.exchange.clone()),
            ("ELASTICIO_EXEC_ID", "exec-1".into()),
            ("ELASTICIO_STEP_ID", "step_1".into()),
            ("ELASTICIO_USER_ID", "user-1".into()),
            ("ELASTICIO_COMP_ID", "comp-1".into()),
            ("ELASTICIO_CONTAINER_ID", "container-1".into()),
            ("ELASTICIO_WORKSPACE_ID", "workspace-1".into()),
            ("ELASTICIO_API_URI", self.api.clone()),
            ("ELASTICIO_API_USERNAME", "bench-user".into()),
            ("ELASTICIO_API_KEY", "bench-api-key".into()),
            ("ELASTICIO_PROTOCOL_VERSION", "1".into()),
            ("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", prefetch.to_string()),
            ("ELASTICIO_AMQP_PERSISTENT_MESSAGES", persistent.to_string()),
            ("COMPONENT_KEYS_EXCHANGE", names.keys_exchange()),
            // sailor-nodejs throttles data events to 10 per 100 ms by default: lifted, so
            // that the runtimes are measured and not their throttles (ours honours the same
            // variable, with the same default).
            ("ELASTICIO_DATA_RATE_LIMIT", "1000000".into()),
            ("BENCH_API_URL", self.api.clone()),
            ("BENCH_ACCESS_TOKEN", bench::ACCESS_TOKEN.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn command(&self, target: Target) -> tokio::process::Command {
        match target {
            Target::Ours => {
                let mut command = tokio::process::Command::new(self.bin_dir.join("component"));
                command.arg("worker");
                command
            }
            Target::Loop => tokio::process::Command::new(self.bin_dir.join("bench-loop")),
            Target::Loop2 => {
                let mut command = tokio::process::Command::new(self.bin_dir.join("bench-loop"));
                command.args(["--connections", "2"]);
                command
            }
            Target::Sailor => {
                let mut command = tokio::process::Command::new("node");
                command
                    .arg("node_modules/elasticio-sailor-nodejs/run.js")
                    .current_dir(&self.node_dir);
                command
            }
        }
    }

    /// One measured run of `target`.
    async fn run(
        &self,
        target: Target,
        prefetch: u16,
        persistent: bool,
        n: u64,
        size: usize,
    ) -> anyhow::Result<Sample> {
        let names = Names::new();
        self.declare(&names, persistent).await?;
        let result = self
            .measure(&names, target, prefetch, persistent, n, size)
            .await;
        self.delete(&names).await;
        result
    }

    async fn measure(
        &self,
        names: &Names,
        target: Target,
        prefetch: u16,
        persistent: bool,
        n: u64,
        size: usize,
    ) -> anyhow::Result<Sample> {
        let connection = Connection::connect(&self.amqp, ConnectionProperties::default()).await?;
        self.preload(&connection, names, n, size, persistent)
            .await?;
        let outputs = connection.create_channel().await?;
        let mut consumer = outputs
            .basic_consume(
                names.output.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;

        let log = std::env::temp_dir().join(format!("bench-{}-{}.log", names.id, target.name()));
        let file = std::fs::File::create(&log)?;
        let started = Instant::now();
        let mut child = self
            .command(target)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .envs(self.env(names, prefetch, persistent))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", target.name()))?;
        let pid = child.id().context("the child has a pid")?;

        #[derive(Default)]
        struct Seen {
            data: Vec<(Vec<u8>, Option<FieldTable>)>,
            first: Option<(Instant, f64)>,
            last: Option<(Instant, f64, u64)>,
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let collect = {
            let seen = seen.clone();
            async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    let now = Instant::now();
                    let mut seen = seen.lock().expect("not poisoned");
                    if seen.first.is_none() {
                        seen.first = Some((now, bench::cpu_seconds(pid).unwrap_or(0.0)));
                    }
                    seen.data
                        .push((delivery.data, delivery.properties.headers().clone()));
                    if seen.data.len() as u64 >= n {
                        seen.last = Some((
                            now,
                            bench::cpu_seconds(pid).unwrap_or(0.0),
                            bench::peak_rss_kib(pid).unwrap_or(0),
                        ));
                        return;
                    }
                }
            }
        };
        let limit = Duration::from_secs(60 + n / 20);
        let finished = tokio::select! {
            _ = tokio::time::timeout(limit, collect) => true,
            status = child.wait() => {
                self.problem(format!("{} exited early ({status:?}); its log: {}", target.name(), log.display()));
                false
            }
        };
        // SIGTERM first (a profiler wrapping the target writes its data then), SIGKILL after 5 s.
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        let _ = outputs.close(200, "done".into()).await;
        let _ = connection.close(200, "done".into()).await;

        let seen = std::mem::take(&mut *seen.lock().expect("not poisoned"));
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        let mut bad = Vec::new();
        for (data, headers) in &seen.data {
            match bench::verify(&self.cipher, data, headers.as_ref(), size) {
                Verdict::Good(i) if i < n => *counts.entry(i).or_default() += 1,
                Verdict::Good(i) => bad.push(format!("an output for input {i}, never sent")),
                Verdict::Bad(why) => bad.push(why),
            }
        }
        let good = counts.values().filter(|c| **c == 1).count() as u64;
        if good < n || !bad.is_empty() {
            let duplicated = counts.values().filter(|c| **c > 1).count();
            self.problem(format!(
                "{} prefetch {prefetch} {}: {good} of {n} inputs have exactly one good output \
                 ({} outputs in all, {duplicated} inputs duplicated, {} bad{}); its log: {}",
                target.name(),
                mode_name(persistent),
                seen.data.len(),
                bad.len(),
                bad.first()
                    .map(|b| format!(", e.g. {b}"))
                    .unwrap_or_default(),
                log.display()
            ));
        } else {
            let _ = std::fs::remove_file(&log);
        }
        let (Some((t0, cpu0)), Some((t1, cpu1, hwm)), true) = (seen.first, seen.last, finished)
        else {
            return Ok(Sample {
                good,
                expected: n,
                ..Sample::default()
            });
        };
        let span = (t1 - t0).as_secs_f64().max(1e-9);
        Ok(Sample {
            rate: (n - 1) as f64 / span,
            cpu_per_1000: (cpu1 - cpu0) / (n - 1) as f64 * 1000.0,
            peak_rss_mib: hwm as f64 / 1024.0,
            startup_ms: (t0 - started).as_secs_f64() * 1000.0,
            good,
            expected: n,
        })
    }

    fn problem(&self, problem: String) {
        eprintln!("PROBLEM: {problem}");
        self.problems.lock().expect("not poisoned").push(problem);
    }
}

fn mode_name(persistent: bool) -> &'static str {
    if persistent {
        "persistent"
    } else {
        "transient"
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median over the runs of `f(a) / f(b)` within each run: the two targets of a run ran
/// one after the other, so a slower or busier moment of the machine weighs on both.
fn paired_ratio(
    cells: &BTreeMap<Target, Vec<Sample>>,
    a: Target,
    b: Target,
    f: fn(&Sample) -> f64,
) -> Option<f64> {
    let (a, b) = (cells.get(&a)?, cells.get(&b)?);
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// The medians of a cell's runs.
fn summary(samples: &[Sample]) -> Sample {
    let of = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Sample {
        rate: of(|s| s.rate),
        cpu_per_1000: of(|s| s.cpu_per_1000),
        peak_rss_mib: of(|s| s.peak_rss_mib),
        startup_ms: of(|s| s.startup_ms),
        good: samples.iter().map(|s| s.good).sum(),
        expected: samples.iter().map(|s| s.expected).sum(),
    }
}

async fn start_api(bin_dir: &std::path::Path) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut api = tokio::process::Command::new(bin_dir.join("bench-api"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start bench-api (build it: cargo build -p bench)")?;
    let stdout = api.stdout.take().context("bench-api's stdout")?;
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await?;
    let url = line.trim().to_owned();
    anyhow::ensure!(url.starts_with("http://"), "bench-api said {url:?}");
    Ok((api, url))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split(' ').take(3).collect::<Vec<_>>().join(" ");
    format!("{cpu}, {cores} cores, load average {load} at the start")
}

async fn table(bed: &Bed, args: &Args) -> anyhow::Result<BTreeMap<Target, Vec<Sample>>> {
    let mut all: BTreeMap<Target, Vec<Sample>> = BTreeMap::new();
    println!(
        "\n## Throughput: `request`, {} inputs of {} body bytes per run, median of {} run(s)\n",
        args.messages, args.size, args.runs
    );
    println!(
        "| prefetch | mode | target | msgs/s | CPU s / 1,000 msgs | peak RSS MiB | start-up ms | verified |"
    );
    println!("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let mut ratios = Vec::new();
    for &prefetch in &args.prefetch {
        for mode in &args.modes {
            let persistent = mode == "persistent";
            let mut cells: BTreeMap<Target, Vec<Sample>> = BTreeMap::new();
            for _ in 0..args.runs {
                for &target in &args.targets {
                    let sample = bed
                        .run(target, prefetch, persistent, args.messages, args.size)
                        .await?;
                    eprintln!(
                        "  {} prefetch {prefetch} {mode}: {:.0} msgs/s, {:.4} CPU s/1000, {:.1} MiB, {:.0} ms start-up, {}/{}",
                        target.name(),
                        sample.rate,
                        sample.cpu_per_1000,
                        sample.peak_rss_mib,
                        sample.startup_ms,
                        sample.good,
                        sample.expected
                    );
                    cells.entry(target).or_default().push(sample);
                }
            }
            for (&target, samples) in &cells {
                let s = summary(samples);
                println!(
                    "| {prefetch} | {mode} | {} | {:.0} | {:.3} | {:.1} | {:.0} | {}/{} |",
                    target.name(),
                    s.rate,
                    s.cpu_per_1000,
                    s.peak_rss_mib,
                    s.startup_ms,
                    s.good,
                    s.expected
                );
                all.entry(target)
                    .or_default()
                    .extend(samples.iter().cloned());
            }
            ratios.push((prefetch, mode.clone(), cells));
        }
    }
    println!(
        "\n| prefetch | mode | ours/loop msgs/s (>= 0.95) | ours/loop CPU (<= 1.15) | ours/loop RSS (<= 1.25) | ours/sailor msgs/s (>= 2.5) | ours/loop2 msgs/s | ours/loop2 CPU |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (prefetch, mode, cells) in ratios {
        let ratio =
            |a: Target, b: Target, f: fn(&Sample) -> f64| match paired_ratio(&cells, a, b, f) {
                Some(ratio) => format!("{ratio:.2}"),
                None => "-".into(),
            };
        println!(
            "| {prefetch} | {mode} | {} | {} | {} | {} | {} | {} |",
            ratio(Target::Ours, Target::Loop, |s| s.rate),
            ratio(Target::Ours, Target::Loop, |s| s.cpu_per_1000),
            ratio(Target::Ours, Target::Loop, |s| s.peak_rss_mib),
            ratio(Target::Ours, Target::Sailor, |s| s.rate),
            ratio(Target::Ours, Target::Loop2, |s| s.rate),
            ratio(Target::Ours, Target::Loop2, |s| s.cpu_per_1000),
        );
    }
    Ok(all)
}

async fn sweep(bed: &Bed, args: &Args) -> anyhow::Result<()> {
    println!(
        "\n## Size sweep: prefetch 16, transient, median of {} run(s)\n",
        args.runs
    );
    println!(
        "| body bytes | inputs | ours msgs/s | ours MB/s | loop msgs/s | loop MB/s | ours/loop | ours CPU s / 1,000 | verified |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &size in &args.sizes {
        let n = (args.messages * 1024 / size as u64).clamp(200, args.messages);
        let mut ours = Vec::new();
        let mut bare = Vec::new();
        for _ in 0..args.runs {
            ours.push(bed.run(Target::Ours, 16, false, n, size).await?);
            bare.push(bed.run(Target::Loop, 16, false, n, size).await?);
        }
        let (o, l) = (summary(&ours), summary(&bare));
        let mb = |rate: f64| rate * size as f64 / 1e6;
        println!(
            "| {size} | {n} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2} | {:.3} | {}/{} |",
            o.rate,
            mb(o.rate),
            l.rate,
            mb(l.rate),
            o.rate / l.rate,
            o.cpu_per_1000,
            o.good + l.good,
            o.expected + l.expected
        );
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.messages = 300;
        args.runs = 1;
        args.prefetch = vec![16];
        args.modes = vec!["transient".into()];
        args.parts = vec![Part::Table, Part::Storm];
        args.storm_calls = 100;
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the binary's directory")?
            .to_owned(),
    };
    let node_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/node-component");
    if args.targets.contains(&Target::Sailor) {
        anyhow::ensure!(
            node_dir
                .join("node_modules/elasticio-sailor-nodejs/run.js")
                .exists(),
            "run `npm ci` in {} first (scripts/test does)",
            node_dir.display()
        );
    }
    let (_api, api) = start_api(&bin_dir).await?;
    let connection = Connection::connect(&args.amqp, ConnectionProperties::default())
        .await
        .context("RabbitMQ answers")?;
    let bed = Bed {
        amqp: args.amqp.clone(),
        api,
        bin_dir,
        node_dir,
        channel: connection.create_channel().await?,
        cipher: Cipher::default(),
        problems: Mutex::new(Vec::new()),
    };
    println!("# scripts/bench\n\nMachine: {}", machine());

    if args.parts.contains(&Part::Table) {
        let all = table(&bed, &args).await?;
        println!("\n## Start-up: spawn to the first output, median over the runs above\n");
        println!("| target | ms |");
        println!("| --- | ---: |");
        for (target, samples) in all {
            println!(
                "| {} | {:.0} |",
                target.name(),
                summary(&samples).startup_ms
            );
        }
    }
    if args.parts.contains(&Part::Sweep) {
        sweep(&bed, &args).await?;
    }
    if args.parts.contains(&Part::Storm)
        && let Err(problem) = bench::storm::run(args.storm_calls).await
    {
        bed.problem(format!("refresh storm: {problem:#}"));
    }
    let _ = connection.close(200, "done".into()).await;
    let problems = bed.problems.into_inner().expect("not poisoned");
    if problems.is_empty() {
        println!("\nEvery output verified against its input.");
        Ok(())
    } else {
        anyhow::bail!("{} problem(s):\n{}", problems.len(), problems.join("\n"))
    }
}

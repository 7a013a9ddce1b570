//! `--metrics-listen`: the admin endpoint. `GET /metrics` answers the Prometheus text format
//! (0.0.4, encoded by `prometheus-client`) of every loop's published counters and of the
//! process; `GET /healthz` answers `200 ok` while serving and `503 draining` from the moment a
//! shutdown starts; anything else is 404.
//!
//! It is an HTTP framing whose [`Route`] is the [`Endpoint`], so it has that framing's parser,
//! limits and refusals, run by an event loop of its own (its listeners, connections, limits and
//! timers) that the first worker's loop drives from its turns: no thread, nothing on the echo's
//! message path, and its traffic is never counted as echo traffic. It allocates per scrape,
//! never per echo message.
//!
//! Its clients must never cost the echo more than a small share of a turn: the side loop reads
//! a bounded number of bytes per turn (`SIDE_TURN_BUDGET`), and a scrape is encoded afresh at
//! most `FRESH_SCRAPES` times a second; past that, for the rest of the second, scrapes (`HEAD`
//! included) reuse the last text. Nothing of a scrape lists a directory: `process_open_fds` is
//! the size the kernel reports for `/proc/self/fd`. Each process metric is read on its own, so a
//! `/proc` that lacks one source (`ProcSubset=pid` hides `/proc/stat`) drops only its series.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::config::{FramingKind, SCRAPE_CACHE};
use crate::framing::http::{Route, Routed};
use crate::framing::{Answers, CloseReason};
use crate::group::{Group, RUNNING};
use crate::metrics::{AcceptError, Snapshot, WS_CLOSE_LABELS};

/// The `Content-Type` of the Prometheus text format, version 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
const TEXT: &str = "text/plain; charset=utf-8";
/// Scrapes encoded afresh per `SCRAPE_CACHE` (a second); later ones in that second reuse the
/// last text. Prometheus, a person with curl and the tests never come near it, so their scrapes
/// are exact (one sent after an answer counts that answer); a client scraping as fast as it can
/// costs at most this many encodings a second (about 50 µs each).
pub const FRESH_SCRAPES: u32 = 16;
/// On kernels before 6.2, where `stat` of `/proc/self/fd` does not count the descriptors, they
/// are counted by listing it (milliseconds with 10,000 open), at most once this often.
const FD_LISTING_INTERVAL: Duration = Duration::from_secs(10);

/// The admin endpoint's routes: every request it gets is answered here, never echoed.
pub(crate) struct Endpoint {
    group: Arc<Group>,
    registry: Registry,
    /// The text of the last scrape, reused by those past `FRESH_SCRAPES` in a second.
    scrape: String,
    /// Whether `scrape` holds a scrape yet.
    scraped: bool,
    /// The second in which scrapes are counted against `FRESH_SCRAPES`, and their count.
    window: (Instant, u32),
    /// The body of the answer being written, when it is not the scrape: a short status line.
    text: &'static str,
    /// The answer being written is the scrape.
    answering_scrape: bool,
}

impl Endpoint {
    pub(crate) fn new(group: Arc<Group>, framing: FramingKind) -> Endpoint {
        let mut registry = Registry::default();
        let framing = match framing {
            FramingKind::Chunk => "chunk",
            FramingKind::Line => "line",
            FramingKind::Http => "http",
        };
        // The registry ends help texts with a period itself.
        registry.register(
            "saythat_build",
            "The running saythat: its version and --framing",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("framing", framing),
            ]),
        );
        registry.register_collector(Box::new(Loops(group.clone())));
        // The server starts within milliseconds of the process: the start time when /proc
        // cannot tell it (no /proc/stat).
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        registry.register_collector(Box::new(Process::new(PathBuf::from("/proc"), started)));
        Endpoint {
            group,
            registry,
            scrape: String::new(),
            scraped: false,
            window: (Instant::now(), 0),
            text: "",
            answering_scrape: false,
        }
    }

    /// Encodes a scrape into `scrape`, unless `FRESH_SCRAPES` were encoded this second already:
    /// then the last one's text is reused.
    fn scrape(&mut self, now: Instant) {
        let (start, fresh) = &mut self.window;
        if now.saturating_duration_since(*start) >= SCRAPE_CACHE {
            (*start, *fresh) = (now, 0);
        }
        if self.scraped && *fresh >= FRESH_SCRAPES {
            return;
        }
        *fresh += 1;
        self.scraped = true;
        self.scrape.clear();
        let encoded =
            prometheus_client::encoding::prometheus_text::encode(&mut self.scrape, &self.registry);
        // Writing into a String cannot fail; a collector's error would leave a partial body,
        // which is still valid text up to its last line.
        debug_assert!(encoded.is_ok(), "encoding the metrics failed");
    }

    fn say(&mut self, status: &'static str, body: &'static str) -> Option<Routed> {
        self.answering_scrape = false;
        self.text = body;
        Some(Routed {
            status,
            content_type: TEXT,
            len: body.len(),
        })
    }
}

impl Route for Endpoint {
    const WEBSOCKET: bool = false;

    fn route(&mut self, method: &str, path: &[u8]) -> Option<Routed> {
        let read = method == "GET" || method == "HEAD";
        match path {
            b"metrics" if read => {
                self.scrape(Instant::now());
                self.answering_scrape = true;
                Some(Routed {
                    status: "200 OK",
                    content_type: METRICS_CONTENT_TYPE,
                    len: self.scrape.len(),
                })
            }
            b"healthz" if read => {
                if self.group.request() == RUNNING {
                    self.say("200 OK", "ok\n")
                } else {
                    self.say("503 Service Unavailable", "draining\n")
                }
            }
            _ => self.say("404 Not Found", "not found\n"),
        }
    }

    fn body(&mut self, answers: &mut Answers<'_>) {
        if self.answering_scrape {
            answers.push(self.scrape.as_bytes());
        } else {
            answers.push(self.text.as_bytes());
        }
    }
}

/// The loops' published counters, summed at each scrape.
struct Loops(Arc<Group>);

impl fmt::Debug for Loops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Loops")
    }
}

impl Collector for Loops {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = Snapshot::of(&self.0.published);
        let t = &s.total;
        let mut e = Encoder(&mut encoder);
        let workers: Vec<(String, u64)> = (s.open_per_worker.iter().enumerate())
            .map(|(i, &open)| (i.to_string(), open))
            .collect();
        e.gauges(
            "saythat_connections_open",
            "Connections open now, per event loop (--workers).",
            "worker",
            workers.iter().map(|(w, n)| (w.as_str(), *n)),
        )?;
        e.counter(
            "saythat_connections_accepted",
            "Connections accepted.",
            t.accepted,
        )?;
        e.counters(
            "saythat_connections_refused",
            "Connections refused at once (full: --max-conns open).",
            "reason",
            [("full", t.refused_full)],
        )?;
        e.counters(
            "saythat_connections_closed",
            "Connections closed, by why.",
            "reason",
            CloseReason::ALL.map(|r| (r.label(), t.closed(r))),
        )?;
        e.counter(
            "saythat_messages",
            "Messages answered: chunks, lines or HTTP responses.",
            s.protocol.messages,
        )?;
        let mut codes: Vec<(String, u64)> = (s.protocol.responses.iter())
            .filter(|(code, _)| *code != 0)
            .map(|(code, n)| (code.to_string(), *n))
            .collect();
        codes.sort();
        e.counters(
            "saythat_http_responses",
            "HTTP responses (--framing http), by status code.",
            "code",
            codes.iter().map(|(c, n)| (c.as_str(), *n)),
        )?;
        let c = &s.protocol.controls;
        e.counter(
            "saythat_http_delayed",
            "HTTP answers held back by a delay control (--framing http).",
            c.delayed,
        )?;
        e.counter(
            "saythat_http_dripped",
            "HTTP answers whose body went out in drips (a drip control).",
            c.dripped,
        )?;
        e.counters(
            "saythat_http_faults",
            "Faults injected by HTTP controls, by kind: reset (a TCP reset), close.",
            "kind",
            [("reset", c.resets), ("close", c.closes)],
        )?;
        let ws = &s.protocol.ws;
        e.gauge(
            "saythat_ws_connections_open",
            "WebSocket connections open now (upgraded, --framing http).",
            ws.open(),
        )?;
        e.counter(
            "saythat_ws_messages_received",
            "WebSocket data messages (text or binary) clients began.",
            ws.messages_in,
        )?;
        e.counter(
            "saythat_ws_messages_sent",
            "WebSocket data messages answered whole.",
            ws.messages_out,
        )?;
        e.counter(
            "saythat_ws_bytes_received",
            "Payload bytes of WebSocket data frames from clients.",
            ws.bytes_in,
        )?;
        e.counter(
            "saythat_ws_bytes_sent",
            "Payload bytes of WebSocket data frames answered, prefix included.",
            ws.bytes_out,
        )?;
        e.counters(
            "saythat_ws_closes_sent",
            "WebSocket close frames sent, by close code (1005: none; other: any code not listed).",
            "code",
            WS_CLOSE_LABELS.into_iter().zip(ws.closes_sent),
        )?;
        e.counters(
            "saythat_ws_closes_received",
            "WebSocket close frames received, by close code (1005: none; other: any code not \
             listed, or an invalid one).",
            "code",
            WS_CLOSE_LABELS.into_iter().zip(ws.closes_received),
        )?;
        e.counter(
            "saythat_bytes_received",
            "Bytes read from clients.",
            t.bytes_in,
        )?;
        e.counter(
            "saythat_bytes_sent",
            "Bytes written to clients.",
            t.bytes_out,
        )?;
        e.gauge(
            "saythat_pending_bytes",
            "Answer bytes waiting to be written to clients that read slower than they send.",
            t.pending,
        )?;
        e.counter(
            "saythat_backpressure_pauses",
            "Times a connection stopped being read until its client read its answers.",
            t.pauses,
        )?;
        e.counters(
            "saythat_accept_errors",
            "Failed accepts (emfile: out of file descriptors).",
            "kind",
            AcceptError::ALL.map(|k| (k.label(), t.accept_errors[k as usize])),
        )
    }
}

/// The standard process metrics, read from /proc at each fresh scrape (Linux; elsewhere none),
/// each on its own: a source /proc lacks drops only the series it gives.
#[derive(Debug)]
struct Process {
    /// Where /proc is: a parameter so that tests can give a fake tree.
    root: PathBuf,
    /// The server's start, seconds since the epoch: the start time when /proc has no
    /// `/proc/stat` to tell the boot time.
    started: f64,
    /// Descriptors counted by listing `fd` (kernels before 6.2), and when.
    listed_fds: std::sync::Mutex<Option<(Instant, u64)>>,
}

impl Process {
    fn new(root: PathBuf, started: f64) -> Process {
        Process {
            root,
            started,
            listed_fds: std::sync::Mutex::new(None),
        }
    }

    fn stats(&self) -> ProcessStats {
        let mut stats = ProcessStats::read(&self.root, self.started);
        stats.open_fds = stats.open_fds.or_else(|| self.listed_fds());
        stats
    }

    /// Descriptors counted by listing `fd`, at most once per `FD_LISTING_INTERVAL`.
    fn listed_fds(&self) -> Option<u64> {
        let mut listed = self.listed_fds.lock().ok()?;
        let now = Instant::now();
        match *listed {
            Some((at, n)) if now.saturating_duration_since(at) < FD_LISTING_INTERVAL => Some(n),
            _ => {
                // The directory's own descriptor is listed too.
                let n = std::fs::read_dir(self.root.join("self/fd")).ok()?.count() as u64;
                let n = n.saturating_sub(1);
                *listed = Some((now, n));
                Some(n)
            }
        }
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let process = self.stats();
        let mut e = Encoder(&mut encoder);
        if let Some(cpu_seconds) = process.cpu_seconds {
            e.counter_f64(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                cpu_seconds,
            )?;
        }
        if let Some(resident_bytes) = process.resident_bytes {
            e.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                resident_bytes,
            )?;
        }
        if let Some(open_fds) = process.open_fds {
            e.gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                open_fds,
            )?;
        }
        if let Some(max_fds) = process.max_fds {
            e.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max_fds,
            )?;
        }
        if let Some(start_time) = process.start_time {
            e.gauge_f64(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start_time,
            )?;
        }
        Ok(())
    }
}

/// Writes one metric family at a time through `prometheus-client`'s encoder.
struct Encoder<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Encoder<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        self.one(name, help, MetricType::Counter, ConstCounter::new(value))
    }

    fn counter_f64(&mut self, name: &str, help: &str, value: f64) -> fmt::Result {
        self.one(name, help, MetricType::Counter, ConstCounter::new(value))
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        self.one(name, help, MetricType::Gauge, ConstGauge::new(value))
    }

    fn gauge_f64(&mut self, name: &str, help: &str, value: f64) -> fmt::Result {
        self.one(name, help, MetricType::Gauge, ConstGauge::new(value))
    }

    /// One unlabelled series under its `# HELP` and `# TYPE` lines.
    fn one(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        metric: impl EncodeMetric,
    ) -> fmt::Result {
        metric.encode(self.0.encode_descriptor(name, help, None, kind)?)
    }

    /// A counter with one label, one series per `(label value, count)`.
    fn counters<'v>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'v str, u64)>,
    ) -> fmt::Result {
        self.family(name, help, MetricType::Counter, label, series)
    }

    fn gauges<'v>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'v str, u64)>,
    ) -> fmt::Result {
        self.family(name, help, MetricType::Gauge, label, series)
    }

    fn family<'v>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        label: &str,
        series: impl IntoIterator<Item = (&'v str, u64)>,
    ) -> fmt::Result {
        let mut family = self.0.encode_descriptor(name, help, None, kind)?;
        for (value, n) in series {
            let labels = [(label, value)];
            let encoder = family.encode_family(&labels)?;
            match kind {
                MetricType::Counter => ConstCounter::new(n).encode(encoder)?,
                _ => ConstGauge::new(n).encode(encoder)?,
            }
        }
        Ok(())
    }
}

/// The kernel reports CPU times in clock ticks of `USER_HZ`, which Linux fixes at 100 for every
/// user-space interface on the architectures it runs on today.
const USER_HZ: f64 = 100.0;

/// What /proc says about this process; `None` where it could not tell.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time: Option<f64>,
}

impl ProcessStats {
    /// Reads each metric from the /proc at `root` on its own. The start time is the boot time
    /// (`/proc/stat`) plus the process's start after boot (`self/stat`), as every exporter
    /// computes it; without `/proc/stat` (`ProcSubset=pid`) it is `started`, the server's start.
    /// `open_fds` is the size `stat` gives `self/fd`, which Linux 6.2 and later make the number
    /// of open descriptors (counting the bits of the descriptor table, without listing it);
    /// `None` on older kernels, where it is 0.
    fn read(root: &Path, started: f64) -> ProcessStats {
        let stat = std::fs::read_to_string(root.join("self/stat")).ok();
        // Fields after the command name, which is in parentheses and may hold anything.
        let fields: Vec<&str> = (stat.as_deref())
            .and_then(|stat| stat.get(stat.rfind(')')? + 2..))
            .map_or_else(Vec::new, |rest| rest.split(' ').collect());
        // Field N of proc(5) is fields[N - 3].
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let cpu_seconds = field(14)
            .zip(field(15))
            .map(|(utime, stime)| (utime + stime) as f64 / USER_HZ);
        let resident_bytes = std::fs::read_to_string(root.join("self/status"))
            .ok()
            .and_then(|status| value_after(&status, "VmRSS:"))
            .map(|kib| kib * 1024);
        let boot = std::fs::read_to_string(root.join("stat"))
            .ok()
            .and_then(|stat| value_after(&stat, "btime"));
        let start_time = match (boot, field(22)) {
            (Some(boot), Some(started)) => Some(boot as f64 + started as f64 / USER_HZ),
            _ => Some(started),
        };
        let open_fds = std::fs::metadata(root.join("self/fd"))
            .ok()
            .map(|fd| fd.len())
            .filter(|&n| n > 0);
        ProcessStats {
            cpu_seconds,
            resident_bytes,
            open_fds,
            max_fds: rlimit::Resource::NOFILE.get_soft().ok(),
            start_time,
        }
    }
}

/// The number after `key` on the line that starts with it (`VmRSS:   1234 kB`).
fn value_after(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Counters, ProtocolCounts};

    fn endpoint(workers: usize) -> Endpoint {
        let group = Arc::new(Group::new(
            (0..workers)
                .map(|_| {
                    let poll = mio::Poll::new().unwrap();
                    mio::Waker::new(poll.registry(), mio::Token(0)).unwrap()
                })
                .collect(),
            100,
        ));
        Endpoint::new(group, FramingKind::Http)
    }

    fn scrape(endpoint: &mut Endpoint) -> String {
        let routed = endpoint.route("GET", b"metrics").expect("routed");
        assert_eq!(routed.content_type, METRICS_CONTENT_TYPE);
        assert_eq!(routed.len, endpoint.scrape.len());
        endpoint.scrape.clone()
    }

    #[test]
    fn a_scrape_sums_the_loops_and_names_every_metric() {
        let mut endpoint = endpoint(2);
        let mut counters = Counters {
            open: 3,
            accepted: 10,
            bytes_in: 640,
            ..Counters::default()
        };
        counters.close(CloseReason::Idle);
        let mut protocol = ProtocolCounts::default();
        protocol.response(200);
        protocol.response(408);
        endpoint.group.published[0].store(&counters, &protocol);
        endpoint.group.published[1].store(&counters, &protocol);
        let text = scrape(&mut endpoint);
        for line in [
            "saythat_connections_open{worker=\"0\"} 3",
            "saythat_connections_open{worker=\"1\"} 3",
            "saythat_connections_accepted_total 20",
            "saythat_connections_refused_total{reason=\"full\"} 0",
            "saythat_connections_closed_total{reason=\"idle\"} 2",
            "saythat_connections_closed_total{reason=\"http_error\"} 0",
            "saythat_messages_total 4",
            "saythat_http_responses_total{code=\"200\"} 2",
            "saythat_http_responses_total{code=\"408\"} 2",
            "saythat_bytes_received_total 1280",
            "saythat_bytes_sent_total 0",
            "saythat_pending_bytes 0",
            "saythat_backpressure_pauses_total 0",
            "saythat_accept_errors_total{kind=\"emfile\"} 0",
            "# TYPE saythat_connections_accepted_total counter",
            "# TYPE process_open_fds gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        let build = format!(
            "saythat_build_info{{version=\"{}\",framing=\"http\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    }

    #[test]
    fn healthz_says_draining_once_a_shutdown_starts_and_the_rest_is_404() {
        let mut endpoint = endpoint(1);
        let ok = endpoint.route("GET", b"healthz").unwrap();
        assert_eq!((ok.status, endpoint.text), ("200 OK", "ok\n"));
        endpoint.group.shutdown();
        let draining = endpoint.route("HEAD", b"healthz").unwrap();
        assert_eq!(draining.status, "503 Service Unavailable");
        assert_eq!(endpoint.text, "draining\n");
        for (method, path) in [
            ("GET", &b"metrics/"[..]),
            ("POST", b"metrics"),
            ("GET", b""),
        ] {
            let routed = endpoint.route(method, path).unwrap();
            assert_eq!(routed.status, "404 Not Found", "{method} /{path:?}");
        }
    }

    /// Scrapes are fresh up to `FRESH_SCRAPES` a second; past that they reuse the last text
    /// until the second is over.
    #[test]
    fn scrapes_past_the_fresh_ones_reuse_the_last_text_for_the_rest_of_the_second() {
        let mut endpoint = endpoint(1);
        let t0 = Instant::now();
        let accepted = |endpoint: &Endpoint| {
            endpoint
                .scrape
                .lines()
                .find(|l| l.starts_with("saythat_connections_accepted_total "))
                .map(str::to_string)
        };
        let publish = |endpoint: &Endpoint, n| {
            let counters = Counters {
                accepted: n,
                ..Counters::default()
            };
            endpoint.group.published[0].store(&counters, &ProtocolCounts::default());
        };
        for n in 0..u64::from(FRESH_SCRAPES) {
            publish(&endpoint, n);
            endpoint.scrape(t0);
            let line = format!("saythat_connections_accepted_total {n}");
            assert_eq!(accepted(&endpoint), Some(line), "fresh scrape {n}");
        }
        publish(&endpoint, 100);
        endpoint.scrape(t0 + SCRAPE_CACHE / 2);
        let last = format!("saythat_connections_accepted_total {}", FRESH_SCRAPES - 1);
        assert_eq!(accepted(&endpoint), Some(last), "past the fresh ones");
        endpoint.scrape(t0 + SCRAPE_CACHE);
        let fresh = "saythat_connections_accepted_total 100".to_string();
        assert_eq!(accepted(&endpoint), Some(fresh), "a second later");
    }

    #[test]
    fn process_stats_are_read() {
        let stats = ProcessStats::read(Path::new("/proc"), 0.0);
        let (open_fds, max_fds) = (stats.open_fds.unwrap(), stats.max_fds.unwrap());
        assert!(open_fds > 0 && open_fds <= max_fds);
        // The count the kernel gives is the listing's (the listing's own descriptor aside).
        let listed = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64 - 1;
        assert!(
            open_fds.abs_diff(listed) <= 2,
            "{open_fds} vs {listed} listed"
        );
        assert!(stats.resident_bytes.unwrap() > 0);
        assert!(stats.cpu_seconds.is_some());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start_time = stats.start_time.unwrap();
        assert!(start_time <= now + 1.0 && start_time > now - 3600.0);
    }

    /// A fake /proc as `ProcSubset=pid` leaves it: no `stat` at the root. Every other metric
    /// is read, and the start time is the server's.
    #[test]
    fn without_proc_stat_only_the_boot_time_is_missing() {
        let root = std::env::temp_dir().join(format!("saythat-proc-{}", std::process::id()));
        std::fs::create_dir_all(root.join("self/fd")).unwrap();
        // pid (comm) state, then fields 4..; utime is field 14, stime 15, starttime 22.
        let stat = "42 (say that) S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 1 0 12345 0 0";
        std::fs::write(root.join("self/stat"), stat).unwrap();
        std::fs::write(
            root.join("self/status"),
            "Name:\tsaythat\nVmRSS:\t  2048 kB\n",
        )
        .unwrap();
        let stats = ProcessStats::read(&root, 1_700_000_000.5);
        assert_eq!(stats.cpu_seconds, Some(3.0));
        assert_eq!(stats.resident_bytes, Some(2048 * 1024));
        assert_eq!(
            stats.start_time,
            Some(1_700_000_000.5),
            "the server's start"
        );
        // With /proc/stat, the boot time plus the start after boot.
        std::fs::write(root.join("stat"), "cpu  1 2 3\nbtime 1600000000\n").unwrap();
        let stats = ProcessStats::read(&root, 1_700_000_000.5);
        assert_eq!(stats.start_time, Some(1_600_000_000.0 + 123.45));
        // Without self/stat and self/status, their series go and the rest stay.
        std::fs::remove_file(root.join("self/stat")).unwrap();
        std::fs::remove_file(root.join("self/status")).unwrap();
        let stats = ProcessStats::read(&root, 1_700_000_000.5);
        assert_eq!((stats.cpu_seconds, stats.resident_bytes), (None, None));
        assert_eq!(stats.start_time, Some(1_700_000_000.5));
        assert!(stats.max_fds.is_some());
        let _ = std::fs::remove_dir_all(&root);
        // Encoded, the missing series are absent and the others present.
        let text = encode_process(Process::new(root, 1_700_000_000.5));
        assert!(!text.contains("process_cpu_seconds"), "{text}");
        assert!(
            text.contains("\nprocess_start_time_seconds 1700000000.5\n"),
            "{text}"
        );
        assert!(text.contains("\nprocess_max_fds "), "{text}");
    }

    fn encode_process(process: Process) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(process));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }
}

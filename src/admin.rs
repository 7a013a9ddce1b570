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

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::config::FramingKind;
use crate::framing::http::{Route, Routed};
use crate::framing::{Answers, CloseReason};
use crate::group::{Group, RUNNING};
use crate::metrics::{AcceptError, Snapshot};

/// The `Content-Type` of the Prometheus text format, version 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
const TEXT: &str = "text/plain; charset=utf-8";

/// The admin endpoint's routes: every request it gets is answered here, never echoed.
pub(crate) struct Endpoint {
    group: Arc<Group>,
    registry: Registry,
    /// The body of the answer being written: a scrape's text, or a short status line. Kept,
    /// so the next scrape reuses its capacity.
    body: String,
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
        registry.register_collector(Box::new(Process));
        Endpoint {
            group,
            registry,
            body: String::new(),
        }
    }

    /// Encodes a scrape into `body`.
    fn scrape(&mut self) {
        self.body.clear();
        let encoded =
            prometheus_client::encoding::prometheus_text::encode(&mut self.body, &self.registry);
        // Writing into a String cannot fail; a collector's error would leave a partial body,
        // which is still valid text up to its last line.
        debug_assert!(encoded.is_ok(), "encoding the metrics failed");
    }

    fn say(&mut self, status: &'static str, body: &str) -> Option<Routed> {
        self.body.clear();
        self.body.push_str(body);
        Some(Routed {
            status,
            content_type: TEXT,
            len: self.body.len(),
        })
    }
}

impl Route for Endpoint {
    fn route(&mut self, method: &str, path: &[u8]) -> Option<Routed> {
        let read = method == "GET" || method == "HEAD";
        match path {
            b"metrics" if read => {
                self.scrape();
                Some(Routed {
                    status: "200 OK",
                    content_type: METRICS_CONTENT_TYPE,
                    len: self.body.len(),
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
        answers.push(self.body.as_bytes());
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

/// The standard process metrics, read from /proc at each scrape (Linux; elsewhere none).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(process) = ProcessStats::read() else {
            return Ok(());
        };
        let mut e = Encoder(&mut encoder);
        e.counter_f64(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            process.cpu_seconds,
        )?;
        e.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.resident_bytes,
        )?;
        e.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            process.open_fds,
        )?;
        e.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            process.max_fds,
        )?;
        e.gauge_f64(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            process.start_time,
        )
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

/// What /proc says about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    open_fds: u64,
    max_fds: u64,
    start_time: f64,
}

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold anything.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // Field N of proc(5) is fields[N - 3].
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let (utime, stime, started) = (field(14)?, field(15)?, field(22)?);
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let rss_kib = value_after(&status, "VmRSS:")?;
        let boot = value_after(&std::fs::read_to_string("/proc/stat").ok()?, "btime")?;
        // The directory's own descriptor is listed too.
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64 - 1;
        let max_fds = rlimit::Resource::NOFILE.get_soft().ok()?;
        Some(ProcessStats {
            cpu_seconds: (utime + stime) as f64 / USER_HZ,
            resident_bytes: rss_kib * 1024,
            open_fds,
            max_fds,
            start_time: boot as f64 + started as f64 / USER_HZ,
        })
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
        assert_eq!(routed.len, endpoint.body.len());
        endpoint.body.clone()
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
        assert_eq!((ok.status, endpoint.body.as_str()), ("200 OK", "ok\n"));
        endpoint.group.shutdown();
        let draining = endpoint.route("HEAD", b"healthz").unwrap();
        assert_eq!(draining.status, "503 Service Unavailable");
        assert_eq!(endpoint.body, "draining\n");
        for (method, path) in [
            ("GET", &b"metrics/"[..]),
            ("POST", b"metrics"),
            ("GET", b""),
        ] {
            let routed = endpoint.route(method, path).unwrap();
            assert_eq!(routed.status, "404 Not Found", "{method} /{path:?}");
        }
    }

    #[test]
    fn process_stats_are_read() {
        let stats = ProcessStats::read().expect("/proc");
        assert!(stats.open_fds > 0 && stats.open_fds <= stats.max_fds);
        assert!(stats.resident_bytes > 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stats.start_time <= now + 1.0 && stats.start_time > now - 3600.0);
    }
}

//! `saythat load` against tiny servers each test starts itself: correct, corrupting, silent ones.
//!
//! These std servers (a thread per connection) speak the wire protocol just well enough to be
//! correct or wrong on purpose; HTTP mode also runs against saythat's own HTTP framing. Every
//! byte goes to 127.0.0.1; each run lasts about 1 s.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{load_ok, parse_load, run_to_end, saythat, TestServer, TIMEOUT};
use saythat::load::{self, LoadArgs, LoadErrorKind};
use saythat::{Config, FramingKind};

const PREFIX: &[u8] = b"You say that ";

/// A run of 4 connections for 1 second with no warmup against `addr`, changed by `extra` flags.
fn args(addr: SocketAddr, extra: &[&str]) -> LoadArgs {
    let addr = addr.to_string();
    let mut argv = vec!["load", "--addr", &addr];
    for default in [["--warmup", "0"], ["--duration", "1"], ["--conns", "4"]] {
        if !extra.contains(&default[0]) {
            argv.extend(default);
        }
    }
    argv.extend(extra);
    parse_load(&argv).expect("the test's flags parse")
}

/// Starts a server on a free loopback port that hands every connection to `handle` on its own
/// thread. The server lives until the test process ends.
fn serve(handle: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // Answers are small writes: Nagle would hold them back for the client's delayed ACK.
            let _ = stream.set_nodelay(true);
            thread::spawn(move || handle(stream));
        }
    });
    addr
}

/// Chunk framing: every read of up to `read_size` bytes is answered by `prefix` + those bytes.
fn chunk_echo(mut s: TcpStream, prefix: &[u8], read_size: usize, corrupt_every: usize) {
    let mut buf = vec![0; read_size];
    let mut answers = 0;
    while let Ok(n @ 1..) = s.read(&mut buf) {
        let mut out = prefix.to_vec();
        out.extend_from_slice(&buf[..n]);
        answers += 1;
        if corrupt_every > 0 && answers % corrupt_every == 0 {
            let last = out.len() - 1;
            out[last] = b'#';
        }
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

fn chunk_server(s: TcpStream) {
    chunk_echo(s, PREFIX, 1024, 0)
}

/// Cuts messages much finer than the real server, to exercise the checker's re-chunking.
fn small_reads_server(s: TcpStream) {
    chunk_echo(s, PREFIX, 100, 0)
}

fn plain_echo_server(s: TcpStream) {
    chunk_echo(s, b"", 1024, 0)
}

fn corrupting_server(s: TcpStream) {
    chunk_echo(s, PREFIX, 1024, 20)
}

/// Line framing: every `\n`-terminated line for which `answer()` says so is answered by the
/// prefix + the line; the others are read and never answered.
fn line_echo_while(s: TcpStream, mut answer: impl FnMut() -> bool) {
    let Ok(mut out) = s.try_clone() else { return };
    let mut lines = BufReader::new(s);
    let mut line = Vec::new();
    while let Ok(1..) = lines.read_until(b'\n', &mut line) {
        if answer() {
            let mut answer = PREFIX.to_vec();
            answer.extend_from_slice(&line);
            if out.write_all(&answer).is_err() {
                return;
            }
        }
        line.clear();
    }
}

fn line_server(s: TcpStream) {
    line_echo_while(s, || true)
}

/// Lines each connection of `freezing_line_server` answers before it stops answering.
const ANSWERED_BEFORE_FREEZING: usize = 50;

/// Answers the first lines of each connection, then reads on and answers no more: a server that
/// freezes in the middle of a run (as under SIGSTOP, but with the connection open).
fn freezing_line_server(s: TcpStream) {
    let mut answered = 0;
    line_echo_while(s, || {
        answered += 1;
        answered <= ANSWERED_BEFORE_FREEZING
    })
}

/// Answers the first 30 lines over all its connections, then no more: a frozen server that a
/// reconnect does not thaw. Only one test uses it.
fn frozen_after_30_server(s: TcpStream) {
    static ANSWERED: AtomicUsize = AtomicUsize::new(0);
    line_echo_while(s, || ANSWERED.fetch_add(1, Ordering::Relaxed) < 30)
}

/// Reads everything and never answers.
fn silent_server(mut s: TcpStream) {
    let mut buf = [0; 4096];
    while let Ok(1..) = s.read(&mut buf) {}
}

/// Answers one message, then closes the connection as soon as the next one arrives.
fn closing_server(mut s: TcpStream) {
    let mut buf = [0; 1024];
    if let Ok(n @ 1..) = s.read(&mut buf) {
        let mut out = PREFIX.to_vec();
        out.extend_from_slice(&buf[..n]);
        let _ = s.write_all(&out);
    }
    let _ = s.read(&mut buf);
}

/// Closes every connection as soon as it is accepted, before any answer.
fn hanging_up_server(s: TcpStream) {
    drop(s)
}

/// Resets every connection as soon as it is accepted (SO_LINGER 0), before any answer.
fn resetting_server(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s)
}

/// Line framing: answers one line, then closes the connection.
fn one_answer_server(s: TcpStream) {
    let Ok(mut out) = s.try_clone() else { return };
    let mut line = PREFIX.to_vec();
    if let Ok(1..) = BufReader::new(s).read_until(b'\n', &mut line) {
        let _ = out.write_all(&line);
    }
}

/// Sends bytes nobody asked for, then echoes.
fn garbage_server(mut s: TcpStream) {
    let _ = s.write_all(b"\x00\xffgarbage\r\n");
    chunk_echo(s, PREFIX, 1024, 0);
}

#[test]
fn a_short_run_against_a_correct_chunk_server_counts_messages_and_no_errors() {
    let report = load_ok(&args(serve(chunk_server), &[]));
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.wrong_answers(), 0);
    assert_eq!(report.conns_connected, 4);
    assert_eq!(report.conns_open_at_end, 4);
    assert!(report.latency_p50_us > 0 && report.latency_p50_us <= report.latency_max_us);
    // 64-byte messages come back with a 13-byte prefix each.
    assert!(report.received_bytes > report.sent_bytes, "{report}");
}

#[test]
fn answers_cut_into_many_prefixed_pieces_are_accepted() {
    let report = load_ok(&args(serve(small_reads_server), &["--size", "3000"]));
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
}

#[test]
fn line_framing_with_pipeline_8_works() {
    let flags = ["--framing", "line", "--pipeline", "8", "--size", "40"];
    let report = load_ok(&args(serve(line_server), &flags));
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
}

#[test]
fn an_empty_prefix_allows_pipelining_in_chunk_framing() {
    let report = load_ok(&args(
        serve(plain_echo_server),
        &["--prefix", "", "--pipeline", "4"],
    ));
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
}

#[test]
fn two_threads_share_the_connections() {
    let report = load_ok(&args(
        serve(chunk_server),
        &["--threads", "2", "--conns", "5"],
    ));
    assert_eq!(report.threads, 2);
    assert_eq!(report.conns_connected, 5);
    assert!(report.messages > 0 && report.errors == 0, "{report}");
}

#[test]
fn a_corrupting_server_yields_described_errors() {
    let report = load_ok(&args(serve(corrupting_server), &[]));
    assert!(report.wrong > 0 && report.wrong_answers() > 0, "{report}");
    assert!(
        report.reconnects > 0,
        "a wrong answer reopens the connection: {report}"
    );
    let first = report.first_errors.first().expect("an error is described");
    assert!(
        first.contains("wrong answer") && first.contains("got '#'"),
        "{first}"
    );
    assert!(report.first_errors.len() <= load::MAX_ERROR_SAMPLES);
}

#[test]
fn bytes_nobody_asked_for_are_wrong() {
    let report = load_ok(&args(serve(garbage_server), &["--conns", "1"]));
    assert!(report.wrong > 0, "{report}");
    assert!(report.first_errors[0].contains("\\x00"), "{report}");
}

#[test]
fn a_silent_server_yields_timeouts() {
    let report = load_ok(&args(serve(silent_server), &["--timeout", "0.2"]));
    assert_eq!(report.messages, 0);
    assert!(
        report.timeouts > 0 && report.errors >= report.timeouts,
        "{report}"
    );
    assert!(
        report.first_errors[0].contains("no complete answer"),
        "{report}"
    );
}

#[test]
fn answers_missing_at_the_end_are_timeouts_and_show_in_the_latency() {
    // Each connection keeps 4 messages in flight; the server answers 50, then none: 8 messages
    // wait past the end of the run, longer than --timeout.
    let flags = [
        "--framing",
        "line",
        "--size",
        "20",
        "--pipeline",
        "4",
        "--conns",
        "2",
        "--duration",
        "0.5",
        "--timeout",
        "1",
    ];
    let report = load_ok(&args(serve(freezing_line_server), &flags));
    assert_eq!(
        report.messages,
        2 * ANSWERED_BEFORE_FREEZING as u64,
        "{report}"
    );
    assert_eq!((report.timeouts, report.errors), (2, 2), "{report}");
    assert!(
        report.first_errors[0].contains("no complete answer"),
        "{report}"
    );
    // 8 of the 108 measured messages waited at least the timeout: more than 1%.
    assert!(report.latency_max_us >= 1_000_000, "{report}");
    assert!(report.latency_p99_us >= 900_000, "{report}");
}

#[test]
fn a_silent_server_is_an_error_even_in_a_run_shorter_than_the_timeout() {
    let flags = ["--duration", "0.3", "--timeout", "1"];
    let started = Instant::now();
    let report = load_ok(&args(serve(silent_server), &flags));
    assert_eq!(report.messages, 0, "{report}");
    assert_eq!((report.timeouts, report.errors), (4, 4), "{report}");
    assert!(report.latency_max_us >= 1_000_000, "{report}");
    // The run waits --timeout past its end for the answers, no longer.
    assert!(started.elapsed() < Duration::from_secs(3), "{report}");
}

#[test]
fn with_a_rate_messages_due_but_never_sent_are_errors() {
    // 100 msg/s for 0.5 s on one connection: 50 due. The first one is never answered and, with
    // one message in flight at most, the 49 others are never sent.
    let flags = [
        "--rate",
        "100",
        "--conns",
        "1",
        "--duration",
        "0.5",
        "--timeout",
        "1.5",
    ];
    let report = load_ok(&args(serve(silent_server), &flags));
    assert_eq!(report.messages, 0, "{report}");
    assert_eq!(
        (report.timeouts, report.not_sent, report.errors),
        (1, 49, 50),
        "{report}"
    );
    assert!(
        report
            .first_errors
            .iter()
            .any(|e| e.contains("49 message(s) due by the end were never sent")),
        "{report}"
    );
}

/// How long `slow_line_server` takes over each answer.
const SLOW_ANSWER: Duration = Duration::from_millis(200);

/// Line framing, every line answered `SLOW_ANSWER` after it is read: slower than the schedule of
/// the test that uses it, so its connection falls behind and catches up only after the end.
fn slow_line_server(s: TcpStream) {
    line_echo_while(s, || {
        thread::sleep(SLOW_ANSWER);
        true
    })
}

#[test]
fn with_a_rate_messages_due_before_the_end_are_sent_late_not_lost() {
    // 10 msg/s for 0.5 s on one connection: 5 due, at 0, 0.1 ... 0.4 s. With one in flight and
    // 200 ms per answer they go out at 0, 0.2 ... 0.8 s: the last two after the end. They are
    // sent then and measured from when they were due (the last waited 0.6 s), as mid-run; none
    // is "never sent", which blamed the server for the end of the schedule.
    let flags = [
        "--framing",
        "line",
        "--size",
        "20",
        "--rate",
        "10",
        "--conns",
        "1",
        "--duration",
        "0.5",
        "--timeout",
        "2",
    ];
    let report = load_ok(&args(serve(slow_line_server), &flags));
    assert_eq!(
        (report.messages, report.not_sent, report.errors),
        (5, 0, 0),
        "{report}"
    );
    assert!(report.latency_max_us >= 550_000, "{report}");
}

#[test]
fn every_message_due_under_a_rate_is_answered_or_counted() {
    // 200 msg/s for 0.5 s: 100 due; the server answers 30, then none even on new connections.
    // With one message in flight per connection, each timeout loses exactly one.
    let flags = [
        "--framing",
        "line",
        "--size",
        "20",
        "--rate",
        "200",
        "--conns",
        "2",
        "--duration",
        "0.5",
        "--timeout",
        "0.2",
    ];
    let report = load_ok(&args(serve(frozen_after_30_server), &flags));
    assert_eq!(report.messages, 30, "{report}");
    assert!(report.timeouts > 0 && report.not_sent > 0, "{report}");
    let lost = report.timeouts + report.closed_early + report.wrong + report.not_sent;
    assert_eq!(report.messages + lost, 100, "{report}");
    assert_eq!(report.errors, lost, "{report}");
}

#[test]
fn a_server_closing_early_is_counted() {
    let report = load_ok(&args(serve(closing_server), &["--conns", "2"]));
    assert!(report.closed_early > 0, "{report}");
    assert!(report.first_errors[0].contains("unanswered"), "{report}");
}

/// Runs 2 connections for 0.5 s against servers that close or reset each connection before
/// answering anything, with `extra` flags, and checks every such close is an error.
fn closes_before_the_first_answer_are_errors(extra: &[&str]) {
    for server in [hanging_up_server as fn(TcpStream), resetting_server] {
        let flags = [&["--conns", "2", "--duration", "0.5"], extra].concat();
        let report = load_ok(&args(serve(server), &flags));
        assert_eq!(report.messages, 0, "{report}");
        assert_eq!(
            (report.connect_failures, report.closed_idle),
            (0, 0),
            "every connect succeeded, and no connection served: {report}"
        );
        // Each close is reconnected, except those found after the end.
        assert!(
            report.closed_early >= report.reconnects.max(1)
                && report.closed_early <= report.reconnects + 2,
            "{report}"
        );
        assert_eq!(
            report.errors,
            report.closed_early + report.not_sent,
            "{report}"
        );
    }
}

#[test]
fn a_server_closing_before_its_first_answer_is_an_error() {
    closes_before_the_first_answer_are_errors(&[]);
}

#[test]
fn with_a_rate_a_server_closing_before_its_first_answer_is_an_error() {
    // Most connections wait for a message when the server drops them.
    closes_before_the_first_answer_are_errors(&["--rate", "10"]);
}

#[test]
fn a_server_closing_a_connection_it_served_is_counted_but_not_an_error() {
    // One message every 250 ms: each connection gets one answer, then is closed idle.
    let flags = [
        "--framing",
        "line",
        "--size",
        "20",
        "--rate",
        "4",
        "--conns",
        "1",
        "--duration",
        "1",
    ];
    let report = load_ok(&args(serve(one_answer_server), &flags));
    assert_eq!((report.messages, report.errors), (4, 0), "{report}");
    assert!(
        // The last close is reconnected unless it is found only after the end.
        (3..=4).contains(&report.closed_idle) && report.reconnects <= report.closed_idle,
        "{report}"
    );
    assert!(report.to_string().contains("closed idle by the server"));
}

#[test]
fn a_closed_port_gives_the_connect_error_with_its_hint() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .local_addr()
            .expect("a bound listener has an address")
    };
    let err = load::run(&args(addr, &["--duration", "5"])).expect_err("nothing listens");
    assert_eq!(err.kind(), LoadErrorKind::Connect);
    let text = err.to_string();
    assert_eq!(
        text,
        format!("cannot connect to {addr}: connection refused; is saythat serve running on that address?")
    );
}

#[test]
fn pipelining_chunk_framing_with_a_prefix_is_refused() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    let err = load::run(&args(addr, &["--pipeline", "2"])).expect_err("ambiguous answers");
    assert_eq!(err.kind(), LoadErrorKind::InvalidArgs);
    assert!(err.to_string().contains("--pipeline 2"), "{err}");
    assert!(err.to_string().contains("--framing line"), "{err}");
}

#[test]
fn out_of_range_values_are_refused_before_connecting() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    for bad in [
        ["--size", "0"],
        ["--duration", "0"],
        ["--rate", "-1"],
        ["--timeout", "nan"],
    ] {
        let mut argv = vec!["load", "--addr", "127.0.0.1:9"];
        argv.extend(bad);
        assert!(
            parse_load(&argv).is_err(),
            "{bad:?} is refused by the parser"
        );
    }
    // Built in code rather than parsed, the same values are refused by `run`.
    let mut a = args(addr, &[]);
    a.duration = f64::NAN;
    assert_eq!(
        load::run(&a).expect_err("NaN").kind(),
        LoadErrorKind::InvalidArgs
    );
    let mut a = args(addr, &[]);
    a.size = 0;
    assert_eq!(
        load::run(&a).expect_err("empty").kind(),
        LoadErrorKind::InvalidArgs
    );
}

#[test]
fn every_flag_refuses_values_that_could_overflow_or_panic() {
    for bad in [
        ["--duration", "18446744073709551615"],
        ["--duration", "inf"],
        ["--duration", "-1"],
        ["--warmup", "1e300"],
        ["--warmup", "-0.5"],
        ["--timeout", "0"],
        ["--timeout", "0.0000001"],
        ["--timeout", "86401"],
        ["--rate", "0"],
        ["--rate", "1e300"],
        ["--rate", "inf"],
        ["--conns", "0"],
        ["--conns", "65536"],
        ["--conns", "4294967295"],
        ["--size", "0"],
        ["--size", "16777217"],
        ["--size", "4294967296"],
        ["--pipeline", "0"],
        ["--pipeline", "1025"],
        ["--threads", "0"],
        ["--threads", "257"],
        ["--messages", "0"],
        ["--messages", "18446744073709551616"],
        ["--reconnect", "0"],
        ["--reconnect", "18446744073709551616"],
    ] {
        // `--flag=value`, so that a negative value is not taken for a flag.
        let flag = format!("{}={}", bad[0], bad[1]);
        match parse_load(&["load", "--addr", "127.0.0.1:9", &flag]) {
            Ok(_) => panic!("{bad:?} is accepted"),
            // Shown on the command line as a usage error, exit 2, naming the flag.
            Err(e) => assert!(e.to_string().contains(bad[0]), "{bad:?}: {e}"),
        }
    }
    // Built in code rather than parsed, the same values are refused by `run`.
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    let refused = |change: &dyn Fn(&mut LoadArgs)| {
        let mut a = args(addr, &[]);
        change(&mut a);
        match load::run(&a) {
            Err(e) => e.kind() == LoadErrorKind::InvalidArgs,
            Ok(_) => false,
        }
    };
    assert!(refused(&|a| a.conns = load::MAX_CONNS + 1));
    assert!(refused(&|a| a.conns = u32::MAX));
    assert!(refused(&|a| a.rate = Some(f64::MAX)));
    assert!(refused(&|a| a.rate = Some(f64::NAN)));
    assert!(refused(&|a| a.timeout = 1e-9));
    assert!(refused(&|a| a.duration = f64::MAX));
    assert!(refused(&|a| a.warmup = f64::INFINITY));
}

#[test]
fn the_largest_values_allowed_run_without_overflowing() {
    // Deadlines a day or more ahead; --messages ends the run at once.
    let flags = [
        "--duration",
        "86400",
        "--timeout",
        "86400",
        "--messages",
        "20",
        "--reconnect",
        "18446744073709551615",
    ];
    let report = load_ok(&args(serve(chunk_server), &flags));
    assert_eq!((report.messages, report.errors), (20, 0), "{report}");
    // Every message of the schedule due at once.
    let flags = ["--rate", "1e9", "--messages", "50", "--duration", "86400"];
    let report = load_ok(&args(serve(chunk_server), &flags));
    assert_eq!((report.messages, report.errors), (50, 0), "{report}");
    // The second message is due too far ahead to represent: only the first is sent.
    let flags = ["--rate", "1e-300", "--conns", "1", "--duration", "0.3"];
    let report = load_ok(&args(serve(chunk_server), &flags));
    assert_eq!((report.messages, report.errors), (1, 0), "{report}");
    let flags = ["--messages", "18446744073709551615", "--duration", "0.3"];
    let report = load_ok(&args(serve(chunk_server), &flags));
    assert!(report.messages > 0 && report.errors == 0, "{report}");
    // Three days of deadlines, planned before the connect fails.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .local_addr()
            .expect("a bound listener has an address")
    };
    let flags = [
        "--warmup",
        "86400",
        "--duration",
        "86400",
        "--timeout",
        "86400",
    ];
    let err = load::run(&args(addr, &flags)).expect_err("nothing listens");
    assert_eq!(err.kind(), LoadErrorKind::Connect, "{err}");
}

#[test]
fn messages_stops_at_the_count() {
    let flags = ["--messages", "300", "--duration", "10"];
    let report = load_ok(&args(serve(chunk_server), &flags));
    assert_eq!(report.messages, 300, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.duration_s < 5.0, "it stopped early: {report}");
}

#[test]
fn a_rate_is_held_roughly() {
    let flags = ["--rate", "1000", "--duration", "1.5", "--conns", "8"];
    let report = load_ok(&args(serve(chunk_server), &flags));
    assert_eq!(report.rate, Some(1000.0));
    assert!(
        (500.0..1500.0).contains(&report.messages_per_s),
        "about 1000 msg/s: {report}"
    );
    assert_eq!(report.errors, 0, "{report}");
}

#[test]
fn reconnecting_every_few_messages_churns_without_errors() {
    let report = load_ok(&args(serve(chunk_server), &["--reconnect", "5"]));
    assert!(report.reconnects > 0, "{report}");
    assert!(report.messages > 0 && report.errors == 0, "{report}");
}

/// How long `paced_line_server` takes over each answer: it keeps `--reconnect`'s churn to a few
/// hundred connects a second, so that hardly ever is one caught in a listener being closed.
const PACE: Duration = Duration::from_millis(2);

/// Line framing, every line answered `PACE` after it is read.
fn paced_line_server(s: TcpStream) {
    line_echo_while(s, || {
        thread::sleep(PACE);
        true
    })
}

/// A server on a free loopback port that hands each connection to `handle` until `down_at`,
/// then closes its listener, so that every connect is refused, and with `back_at` listens on the
/// same port again from then on. The connections it took are served until their client closes
/// them.
fn serve_with_outage(
    handle: fn(TcpStream),
    down_at: Duration,
    back_at: Option<Duration>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let start = Instant::now();
    thread::spawn(move || {
        accept_until(&listener, handle, Some(start + down_at));
        drop(listener);
        let Some(back_at) = back_at else { return };
        thread::sleep(back_at.saturating_sub(start.elapsed()));
        // std sets SO_REUSEADDR, so the port binds again at once.
        let listener = TcpListener::bind(addr).expect("bind the same port again");
        accept_until(&listener, handle, None);
    });
    addr
}

/// Hands each connection `listener` accepts to `handle` on a thread of its own, until `until`
/// (then after taking what its queue holds, so that closing it resets as few as can be), or for
/// as long as the test process lives.
fn accept_until(listener: &TcpListener, handle: fn(TcpStream), until: Option<Instant>) {
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    loop {
        let over = until.is_some_and(|t| Instant::now() >= t);
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                thread::spawn(move || handle(stream));
            }
            Err(_) if over => return,
            // Nothing to accept: look again shortly (a test server; the run is short).
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[test]
fn a_server_that_goes_away_fails_the_run_with_exit_1() {
    // Served for 0.3 s of a 1.5 s run; with --reconnect every connection soon needs a new one,
    // which is refused from then on. Nothing else goes wrong: that alone must fail the run.
    let addr = serve_with_outage(paced_line_server, Duration::from_millis(300), None).to_string();
    let argv = [
        "load",
        "--addr",
        &addr,
        "--framing",
        "line",
        "--conns",
        "4",
        "--reconnect",
        "5",
        "--warmup",
        "0",
        "--duration",
        "1.5",
        "--json",
    ];
    let output = run_to_end(saythat(&argv), None, TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert_eq!(output.status.code(), Some(1), "{stderr}\n{report}");
    assert!(
        report["messages"].as_u64() > Some(0),
        "it served at first: {report}"
    );
    let failed = report["connect_errors"].as_u64().unwrap_or(0);
    assert!(failed > 0, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(failed), "{report}");
    let described = report["first_errors"].as_array().is_some_and(|errors| {
        errors.iter().filter_map(|e| e.as_str()).any(|e| {
            e.contains(&format!(
                "cannot connect to {addr} after the warmup: connection refused"
            ))
        })
    });
    assert!(described, "{report}");
    assert!(
        stderr.contains("connect(s) failed after the warmup"),
        "{stderr}"
    );
}

#[test]
fn connect_failures_during_the_warmup_are_counted_but_not_errors() {
    // A restart in the warmup: the port refuses from 0.2 s to 0.5 s of a 0.8 s warmup, and every
    // connection is reopened every 5 messages, so each tries to reconnect in that time.
    let (down, back) = (Duration::from_millis(200), Duration::from_millis(500));
    let addr = serve_with_outage(paced_line_server, down, Some(back));
    let flags = [
        "--framing",
        "line",
        "--reconnect",
        "5",
        "--warmup",
        "0.8",
        "--duration",
        "0.5",
    ];
    let report = load_ok(&args(addr, &flags));
    assert!(report.connect_failures > 0, "{report}");
    assert_eq!((report.connect_errors, report.errors), (0, 0), "{report}");
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.failure(), None);
}

#[test]
fn the_report_serialises_with_the_expected_keys() {
    let report = load_ok(&args(serve(chunk_server), &["--duration", "0.3"]));
    let json = serde_json::to_value(&report).expect("a report serialises");
    for key in [
        "messages",
        "messages_per_s",
        "sent_mib_per_s",
        "received_mib_per_s",
        "latency_p50_us",
        "latency_p90_us",
        "latency_p99_us",
        "latency_p999_us",
        "latency_max_us",
        "errors",
        "not_sent",
        "closed_idle",
        "connect_failures",
        "connect_errors",
        "conns_requested",
        "conns_connected",
        "duration_s",
        "timeout_s",
    ] {
        assert!(json[key].is_number(), "{key} is a number in {json}");
    }
    assert!(json["first_errors"].is_array());
    assert!(json["rate"].is_null());
    assert_eq!(json["framing"], "chunk");
    let text = report.to_string();
    assert!(text.contains("latency") && text.contains("p99.9"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// saythat serving HTTP on a free loopback port.
fn http_server() -> TestServer {
    TestServer::start(&Config {
        framing: FramingKind::Http,
        ..Config::loopback()
    })
}

/// Runs `--messages 2000` HTTP requests of `method`, `pipeline` in flight per connection, against
/// saythat, and checks that every one was sent once and answered right.
fn http_against_saythat(method: &str, pipeline: &str) {
    let server = http_server();
    let flags = [
        "--framing",
        "http",
        "--method",
        method,
        "--pipeline",
        pipeline,
        "--messages",
        "2000",
        "--duration",
        "30",
    ];
    let report = load_ok(&args(server.addr(), &flags));
    assert_eq!((report.messages, report.errors), (2000, 0), "{report}");
    assert_eq!(report.framing, "http");
    assert_eq!(report.method.as_deref(), Some(method));
    assert_eq!(report.conns_open_at_end, 4, "kept alive: {report}");
    // Every request went out once, whole: its head and the 64-byte message.
    let host = format!("Host: {}\r\n", server.addr());
    let request = match method {
        "get" => "GET / HTTP/1.1\r\n".len() + host.len() + 2 + 64,
        _ => "POST / HTTP/1.1\r\nContent-Length: 64\r\n".len() + host.len() + 2 + 64,
    };
    assert_eq!(report.sent_bytes, 2000 * request as u64, "{report}");
    // Every answer had at least its body: the prefix and the message.
    assert!(
        report.received_bytes > 2000 * (PREFIX.len() as u64 + 64),
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!("http framing ({})", method.to_uppercase())),
        "{text}"
    );
    assert!(text.contains("0 bad status, 0 connection close"), "{text}");
}

#[test]
fn http_get_against_saythat_is_answered_right() {
    http_against_saythat("get", "1");
}

#[test]
fn http_post_against_saythat_is_answered_right() {
    http_against_saythat("post", "1");
}

#[test]
fn http_get_pipelined_16_against_saythat_is_answered_right() {
    http_against_saythat("get", "16");
}

#[test]
fn http_post_pipelined_16_against_saythat_is_answered_right() {
    http_against_saythat("post", "16");
}

/// HTTP/1.1 just well enough for the load generator's requests: reads each request (its head,
/// and a Content-Length body) and writes what `answer` makes of the `n`-th request's message (its
/// body, else its path after `/`); the connection closes when `answer` says so.
fn http_echo(s: TcpStream, mut answer: impl FnMut(usize, &[u8]) -> (Vec<u8>, bool)) {
    let Ok(mut out) = s.try_clone() else { return };
    let mut input = BufReader::new(s);
    let mut line = String::new();
    for n in 0.. {
        line.clear();
        if !matches!(input.read_line(&mut line), Ok(1..)) {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut length = 0;
        loop {
            line.clear();
            if !matches!(input.read_line(&mut line), Ok(1..)) {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if input.read_exact(&mut body).is_err() {
            return;
        }
        let message = match length {
            0 => path.trim_start_matches('/').as_bytes().to_vec(),
            _ => body,
        };
        let (bytes, keep_open) = answer(n, &message);
        if out.write_all(&bytes).is_err() || !keep_open {
            return;
        }
    }
}

/// The right answer to `message`, with the header fields `extra` (each ending in CRLF).
fn http_ok(message: &[u8], extra: &str) -> Vec<u8> {
    let body = [PREFIX, message].concat();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    [head.as_bytes(), &body].concat()
}

/// Answers every 20th request of a connection with its body's last byte changed to `#`.
fn http_wrong_body_server(s: TcpStream) {
    http_echo(s, |n, m| {
        let mut a = http_ok(m, "");
        if n % 20 == 19 {
            let last = a.len() - 1;
            a[last] = b'#';
        }
        (a, true)
    })
}

/// Answers every request 500, closing the connection, as a failing server does.
fn http_500_server(s: TcpStream) {
    let answer = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 6\r\nConnection: close\r\n\r\nbroke\n";
    http_echo(s, |_, _| (answer.to_vec(), false))
}

/// Answers 10 requests per connection, then writes half of the next answer and closes.
fn http_cut_server(s: TcpStream) {
    http_echo(s, |n, m| {
        let mut a = http_ok(m, "");
        if n < 10 {
            return (a, true);
        }
        a.truncate(a.len() - 20);
        (a, false)
    })
}

/// Answers right but says `Connection: close`, and closes.
fn http_closing_server(s: TcpStream) {
    http_echo(s, |_, m| (http_ok(m, "Connection: close\r\n"), false))
}

/// Answers right in hyper's manner (lowercase names, its own order) but chunked, the body cut
/// in three chunks, each written on its own.
fn http_chunked_server(s: TcpStream) {
    http_echo(s, |_, m| {
        let body = [PREFIX, m].concat();
        let mut a =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n"
                .to_vec();
        for piece in [&body[..5], &body[5..30], &body[30..]] {
            a.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            a.extend_from_slice(piece);
            a.extend_from_slice(b"\r\n");
        }
        a.extend_from_slice(b"0\r\n\r\n");
        (a, true)
    })
}

#[test]
fn http_wrong_bodies_are_wrong_answers() {
    let report = load_ok(&args(serve(http_wrong_body_server), &["--framing", "http"]));
    assert!(report.messages > 0 && report.wrong > 0, "{report}");
    assert!(
        report.reconnects > 0,
        "a wrong answer reopens the connection: {report}"
    );
    let first = &report.first_errors[0];
    assert!(
        first.contains("wrong answer to message 19") && first.contains("got '#'"),
        "{first}"
    );
}

#[test]
fn http_answers_other_than_200_are_bad_status() {
    let flags = ["--framing", "http", "--method", "post", "--duration", "0.5"];
    let report = load_ok(&args(serve(http_500_server), &flags));
    assert_eq!(report.messages, 0, "{report}");
    assert!(report.bad_status > 0, "{report}");
    assert_eq!(report.errors, report.bad_status, "{report}");
    assert!(
        report.first_errors[0].contains("status `500 Internal Server Error`"),
        "{report}"
    );
    assert!(report.failure().is_some());
}

#[test]
fn http_answers_cut_by_a_close_are_closed_early() {
    let report = load_ok(&args(serve(http_cut_server), &["--framing", "http"]));
    assert!(
        report.messages >= 40,
        "10 per connection at least: {report}"
    );
    assert!(report.closed_early > 0, "{report}");
    assert_eq!(report.errors, report.closed_early, "{report}");
    assert!(
        report.first_errors[0].contains("1 message(s) unanswered"),
        "{report}"
    );
}

#[test]
fn http_connection_close_is_an_error() {
    let flags = ["--framing", "http", "--duration", "0.5"];
    let report = load_ok(&args(serve(http_closing_server), &flags));
    assert!(report.connection_close > 0, "{report}");
    assert_eq!(report.errors, report.connection_close, "{report}");
    assert!(
        report.first_errors[0].contains("Connection: close"),
        "{report}"
    );
}

/// Answers every request with an unsolicited `100 Continue` (no request says `Expect`), then
/// the right answer, each in a write of its own, as a server or proxy may (RFC 9110 section 15.2).
fn http_continue_server(s: TcpStream) {
    let Ok(mut out) = s.try_clone() else { return };
    http_echo(s, move |_, m| {
        let interim = out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_ok();
        (http_ok(m, ""), interim)
    })
}

#[test]
fn http_interim_100_continue_before_the_answer_is_skipped() {
    let flags = ["--framing", "http", "--method", "post", "--pipeline", "4"];
    let report = load_ok(&args(serve(http_continue_server), &flags));
    assert!(report.messages > 0, "{report}");
    assert_eq!((report.errors, report.bad_status), (0, 0), "{report}");
    assert_eq!(report.reconnects, 0, "kept alive: {report}");
}

#[test]
fn http_chunked_answers_with_lowercase_names_pass() {
    let flags = ["--framing", "http", "--pipeline", "4", "--size", "100"];
    let report = load_ok(&args(serve(http_chunked_server), &flags));
    assert!(report.messages > 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
}

#[test]
fn a_method_without_http_framing_is_refused() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    let err = load::run(&args(addr, &["--method", "post"])).expect_err("no method in echo");
    assert_eq!(err.kind(), LoadErrorKind::InvalidArgs);
    assert!(err.to_string().contains("--method post"), "{err}");
    assert!(err.to_string().contains("--framing http"), "{err}");
    // GET, the default, may be given with any framing.
    let a = args(addr, &["--method", "get", "--framing", "line"]);
    assert_ne!(
        load::run(&a).map_err(|e| e.kind()).err(),
        Some(LoadErrorKind::InvalidArgs)
    );
}

/// `saythat load --framing http --json` against `addr` for 0.5 s: its exit code and report.
fn http_load_cli(addr: SocketAddr, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let addr = addr.to_string();
    let mut argv = vec![
        "load",
        "--addr",
        &addr,
        "--framing",
        "http",
        "--conns",
        "2",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--timeout",
        "1",
        "--json",
    ];
    argv.extend(extra);
    let output = run_to_end(saythat(&argv), None, TIMEOUT);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), report, stderr)
}

#[test]
fn http_load_on_the_command_line_exits_0_when_right_and_1_on_any_error() {
    let server = http_server();
    let (code, report, stderr) =
        http_load_cli(server.addr(), &["--method", "post", "--pipeline", "16"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["framing"], "http");
    assert_eq!(report["method"], "post");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert!(report["messages"].as_u64() > Some(0), "{report}");

    for (server, kind) in [
        (http_wrong_body_server as fn(TcpStream), "wrong"),
        (http_500_server, "bad_status"),
        (http_cut_server, "closed_early"),
        (http_closing_server, "connection_close"),
    ] {
        let (code, report, stderr) = http_load_cli(serve(server), &[]);
        assert_eq!(code, Some(1), "{kind}: {stderr}");
        assert!(report[kind].as_u64() > Some(0), "{kind}: {report}");
        assert!(stderr.contains("error(s)"), "{kind}: {stderr}");
    }
}

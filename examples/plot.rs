//! Draws the load-test sweep of `scripts/loadtest.sh` as one SVG with three panels, messages/s
//! (or requests/s), p99 latency and the server's CPU time per message against connections, one
//! line per (server, scenario):
//!
//!     cargo run --release --example plot -- results/loadtest.csv results/loadtest.svg [MACHINE]
//!
//! MACHINE goes in the title, which is wrapped to fit the picture; without it, the CPU model and
//! core count are read from this machine. A point without a CPU figure (an empty
//! `cpu_us_per_msg`, or no such column) is left out of the CPU panel only. Bad input (a missing file, a missing column, a field that is not a number) is one
//! line on stderr and exit 1, never a panic.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const USAGE: &str = "usage: plot RESULTS.csv OUT.svg [MACHINE]";
/// Size of the whole picture in pixels: three panels side by side and a legend, under a title.
const SIZE: (u32, u32) = (1800, 640);
/// Width of the legend column right of the panels, in pixels: room for `tungstenite WS 64B`.
const LEGEND_WIDTH: u32 = 210;
/// One colour per scenario, in the order the scenarios first appear (cycled past the end).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(227, 119, 194),
    RGBColor(140, 86, 75),
];
/// Columns the plot reads; the CSV may have others, in any order.
const NEEDED: [&str; 5] = ["server", "scenario", "conns", "msgs_per_s", "p99_us"];
/// The server's CPU time per message in µs: read when the CSV has it (older sweeps did not).
const CPU: &str = "cpu_us_per_msg";
/// What the scenarios of `scripts/loadtest.sh` are, for the subtitle; others go by their name.
const SCENARIOS: [(&str, &str); 14] = [
    (
        "64B",
        "64B, 1024B: chunk ping-pong, one in flight per connection.",
    ),
    (
        "1024B",
        "64B, 1024B: chunk ping-pong, one in flight per connection.",
    ),
    ("line x16", "line x16: 64-byte lines, 16 in flight."),
    ("GET", "GET: keep-alive HTTP GET of a 64-byte path."),
    ("GET x16", "GET x16: 16 pipelined."),
    ("POST 64B", "POST 64B: a 64-byte body."),
    (
        "WS 64B",
        "WS 64B: 64-byte binary WebSocket messages, ping-pong.",
    ),
    ("WS x16", "WS x16: 16 in flight."),
    (
        "TLS GET",
        "TLS GET: keep-alive HTTPS GET of a 64-byte path (TLS 1.3, P-256).",
    ),
    (
        "TLS 64B",
        "TLS 64B, TLS 1024B: chunk ping-pong over TLS 1.3.",
    ),
    (
        "TLS 1024B",
        "TLS 64B, TLS 1024B: chunk ping-pong over TLS 1.3.",
    ),
    ("TLS GET at 50k/s", OPEN_LOOP),
    ("TLS 64B at 50k/s", OPEN_LOOP),
    ("TLS 1024B at 40k/s", OPEN_LOOP),
];
/// What a point measured at one offered rate (`load --rate`) is.
const OPEN_LOOP: &str = "At N/s: open loop, one offered rate for both servers.";
/// Characters in one line of the subtitle: at 16 px, about what the picture's width holds.
const SUBTITLE_CHARS: usize = 150;
/// Characters in one line of the title: at 24 px bold, about 15 px each, well inside the width.
const TITLE_CHARS: usize = 100;
/// The words for a peer in the title; others go by their name.
const PEERS: [(&str, &str); 4] = [
    ("tokio", "a minimal tokio server"),
    ("hyper", "a minimal hyper server"),
    ("tungstenite", "a minimal tokio-tungstenite server"),
    ("rustls", "hyper or tokio over tokio-rustls"),
];

/// One measured point of the sweep.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    server: String,
    scenario: String,
    conns: f64,
    msgs_per_s: f64,
    p99_us: f64,
    /// Server CPU µs per message; `None` when the sweep did not record it.
    cpu_us: Option<f64>,
}

/// One point as drawn: connections, messages/s, p99 µs, CPU µs per message (0 when unknown:
/// a log axis leaves it out).
type Xy = (f64, f64, f64, f64);

/// The points of one (server, scenario), in increasing connections.
#[derive(Debug)]
struct Series {
    server: String,
    scenario: String,
    points: Vec<Xy>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let machine = args.get(2).cloned().unwrap_or_else(this_machine);
    match run(Path::new(&args[0]), Path::new(&args[1]), &machine) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(csv: &Path, svg: &Path, machine: &str) -> Result<(), String> {
    let text =
        std::fs::read_to_string(csv).map_err(|e| format!("cannot read {}: {e}", csv.display()))?;
    let points = parse(&text).map_err(|e| format!("{}: {e}", csv.display()))?;
    draw(&series(&points), svg, machine)
        .map_err(|e| format!("cannot draw {}: {e}", svg.display()))?;
    eprintln!("wrote {}", svg.display());
    Ok(())
}

/// Parses the sweep CSV: a header naming at least the `NEEDED` columns, then one row per point.
/// Fields hold no commas (server and scenario names are plain words).
fn parse(text: &str) -> Result<Vec<Point>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or("the file is empty; expected a CSV header")?;
    let header: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            format!(
                "no `{name}` column in the header; it needs {}",
                NEEDED.join(",")
            )
        })
    };
    let [server, scenario, conns, msgs, p99] = NEEDED.map(col);
    let (server, scenario, conns, msgs, p99) = (server?, scenario?, conns?, msgs?, p99?);
    let cpu = header.iter().position(|h| *h == CPU);

    let mut points = Vec::new();
    for (i, line) in lines {
        let at = i + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            return Err(format!(
                "line {at}: {} fields where the header has {}",
                fields.len(),
                header.len()
            ));
        }
        let number = |c: usize, positive: bool| -> Result<f64, String> {
            let v: f64 = fields[c]
                .parse()
                .map_err(|_| format!("line {at}: {} `{}` is not a number", header[c], fields[c]))?;
            let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
            if ok {
                Ok(v)
            } else {
                Err(format!("line {at}: {} {v} is out of range", header[c]))
            }
        };
        let name = |c: usize| -> Result<String, String> {
            match fields[c] {
                "" => Err(format!("line {at}: {} is empty", header[c])),
                s => Ok(s.to_string()),
            }
        };
        points.push(Point {
            server: name(server)?,
            scenario: name(scenario)?,
            conns: number(conns, true)?,
            msgs_per_s: number(msgs, false)?,
            p99_us: number(p99, false)?,
            cpu_us: match cpu {
                Some(c) if !fields[c].is_empty() => Some(number(c, false)?),
                _ => None,
            },
        });
    }
    if points.is_empty() {
        return Err("no data rows under the header".to_string());
    }
    Ok(points)
}

/// Groups points by scenario then server, in the order each first appears.
fn series(points: &[Point]) -> Vec<Series> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    for p in points {
        let key = (p.scenario.as_str(), p.server.as_str());
        if !order.contains(&key) {
            order.push(key);
        }
    }
    let scenarios = first_seen(points.iter().map(|p| p.scenario.as_str()));
    order.sort_by_key(|(scenario, _)| scenarios.iter().position(|s| s == scenario));
    order
        .into_iter()
        .map(|(scenario, server)| {
            let mut pts: Vec<Xy> = points
                .iter()
                .filter(|p| p.scenario == scenario && p.server == server)
                .map(|p| (p.conns, p.msgs_per_s, p.p99_us, p.cpu_us.unwrap_or(0.0)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                server: server.to_string(),
                scenario: scenario.to_string(),
                points: pts,
            }
        })
        .collect()
}

fn first_seen<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for n in names {
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    seen
}

/// "AMD EPYC, 2 cores", from /proc/cpuinfo and the cores this process may use.
fn this_machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

/// 12000 as "12k", 1500000 as "1.5M".
fn short_count(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", trim(v / 1e6)),
        v if v >= 1e3 => format!("{}k", trim(v / 1e3)),
        v => trim(v),
    }
}

/// A latency in µs in the unit that keeps it short.
fn short_us(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{} s", trim(v / 1e6)),
        v if v >= 1e3 => format!("{} ms", trim(v / 1e3)),
        v => format!("{} µs", trim(v)),
    }
}

/// A CPU time per message in µs: two decimals under 1 µs, where pipelined points lie.
fn short_cpu(v: f64) -> String {
    match v {
        v if v < 1.0 => {
            let s = format!("{v:.2}");
            format!("{} µs", s.trim_end_matches('0'))
        }
        v => format!("{} µs", trim(v)),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn err(e: impl Display) -> String {
    e.to_string()
}

/// The whole picture: title, the throughput, latency and CPU panels, the legend.
fn draw(all: &[Series], svg: &Path, machine: &str) -> Result<(), String> {
    let root = SVGBackend::new(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let heading = wrap(&title(all, machine), TITLE_CHARS);
    let lines = subtitle(all);
    let below_title = 12 + 30 * heading.len() as i32;
    let (top, rest) = root.split_vertically(below_title as u32 + 6 + 22 * lines.len() as u32);
    for (i, line) in heading.iter().enumerate() {
        top.draw(&Text::new(
            line.as_str(),
            (20, 12 + 30 * i as i32),
            ("sans-serif", 24).into_font().style(FontStyle::Bold),
        ))
        .map_err(err)?;
    }
    for (i, line) in lines.iter().enumerate() {
        top.draw(&Text::new(
            line.as_str(),
            (20, below_title + 2 + 22 * i as i32),
            ("sans-serif", 16).into_font(),
        ))
        .map_err(err)?;
    }

    let conns: BTreeSet<u64> = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0.round() as u64))
        .collect();
    let ticks: Vec<f64> = conns.iter().map(|&c| c as f64).collect();
    let (x_lo, x_hi) = match (ticks.first(), ticks.last()) {
        (Some(&lo), Some(&hi)) => (lo / 1.5, hi * 1.5),
        _ => return Err("nothing to draw".to_string()),
    };
    let x = || (x_lo..x_hi).log_scale().with_key_points(ticks.clone());
    let msgs = log_range(all.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let p99 = log_range(all.iter().flat_map(|s| s.points.iter().map(|p| p.2)));
    let cpu = log_range(all.iter().flat_map(|s| s.points.iter().map(|p| p.3)));
    let look = Look {
        servers: first_seen(all.iter().map(|s| s.server.as_str())),
        scenarios: first_seen(all.iter().map(|s| s.scenario.as_str())),
    };

    let (panels, legend) = rest.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let third = (SIZE.0 - LEGEND_WIDTH) / 3;
    let (left, rest) = panels.split_horizontally(third);
    let (middle, right) = rest.split_horizontally(third);
    let throughput = Panel {
        caption: "Throughput (higher is better)",
        y_desc: "messages/s (log scale)",
        y_label: &|v| short_count(*v),
        value: |p| p.1,
    };
    let y = msgs.clone().log_scale().with_key_points(ticks_125(msgs));
    draw_panel(&left, x(), y, throughput, all, &look)?;
    let latency = Panel {
        caption: "p99 latency (lower is better)",
        y_desc: "p99 latency (log scale)",
        y_label: &|v| short_us(*v),
        value: |p| p.2,
    };
    let y = p99.clone().log_scale().with_key_points(ticks_125(p99));
    draw_panel(&middle, x(), y, latency, all, &look)?;
    let per_message = Panel {
        caption: "Server CPU per message (lower is better)",
        y_desc: "server user+system CPU per message (log scale)",
        y_label: &|v| short_cpu(*v),
        value: |p| p.3,
    };
    let y = cpu.clone().log_scale().with_key_points(ticks_125(cpu));
    draw_panel(&right, x(), y, per_message, all, &look)?;
    draw_legend(&legend, all, &look)?;
    root.present().map_err(err)?;
    Ok(())
}

/// "saythat vs a minimal tokio server and a minimal hyper server, loopback, closed loop: MACHINE":
/// the servers other than the first are its peers. `draw` wraps it to the picture's width.
fn title(all: &[Series], machine: &str) -> String {
    let servers = first_seen(all.iter().map(|s| s.server.as_str()));
    let peers: Vec<&str> = servers
        .iter()
        .skip(1)
        .map(|&p| {
            PEERS
                .iter()
                .find(|(n, _)| *n == p)
                .map_or(p, |(_, words)| words)
        })
        .collect();
    let first = servers.first().copied().unwrap_or("saythat");
    // A scenario named "... at N/s" ran at one offered rate (scripts/loadtest.sh's open loop).
    let open = all.iter().any(|s| s.scenario.ends_with("/s"));
    let loops = match open {
        true => "closed and open loop",
        false => "closed loop",
    };
    match peers.split_last() {
        None => format!("{first}, loopback, {loops}: {machine}"),
        Some((last, [])) => format!("{first} vs {last}, loopback, {loops}: {machine}"),
        Some((last, others)) => format!(
            "{first} vs {} and {last}, loopback, {loops}: {machine}",
            others.join(", ")
        ),
    }
}

/// `text` cut at spaces into lines of at most `width` characters (a longer word alone on its
/// line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// What each scenario drawn is, once each, in the order they first appear, in lines of at most
/// `SUBTITLE_CHARS` (unless one description is longer).
fn subtitle(all: &[Series]) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for scenario in first_seen(all.iter().map(|s| s.scenario.as_str())) {
        let said = SCENARIOS
            .iter()
            .find(|(n, _)| *n == scenario)
            .map_or_else(|| scenario.to_string(), |(_, words)| words.to_string());
        if !parts.contains(&said) {
            parts.push(said);
        }
    }
    parts.push("Every answer checked.".to_string());
    let mut lines: Vec<String> = Vec::new();
    for part in parts {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 2 + part.chars().count() <= SUBTITLE_CHARS => {
                line.push_str("  ");
                line.push_str(&part);
            }
            _ => lines.push(part),
        }
    }
    lines
}

/// A range for a log axis holding every positive value, with a margin either side.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        lo / 1.5..(hi * 1.5).max(lo * 10.0)
    } else {
        1.0..10.0
    }
}

/// Ticks at 1, 2 and 5 times each power of ten inside `range`: a log axis with only its decades
/// labelled is hard to read off.
fn ticks_125(range: std::ops::Range<f64>) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(range.start.log10().floor());
    while decade <= range.end && ticks.len() < 64 {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if range.contains(&t) {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// What differs between the panels.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    y_label: &'a dyn Fn(&f64) -> String,
    /// The y value of a point.
    value: fn(&Xy) -> f64,
}

/// How series are told apart: colour by scenario; line and marker by server (the first server
/// solid with dots, any other dashed with triangles).
struct Look<'a> {
    servers: Vec<&'a str>,
    scenarios: Vec<&'a str>,
}

/// How one series is drawn.
struct Mark {
    colour: RGBColor,
    solid: bool,
}

impl Mark {
    /// Dash and gap lengths in pixels; a dash with no gap is a solid line.
    fn dash(&self) -> (u32, u32) {
        if self.solid {
            (30, 0)
        } else {
            (8, 5)
        }
    }

    fn line(&self) -> ShapeStyle {
        self.colour.stroke_width(2)
    }

    /// The marker at one point: a dot for the first server, a triangle for the others.
    fn marker<DB: DrawingBackend, C: Clone + 'static>(&self, at: C) -> DynElement<'static, DB, C> {
        if self.solid {
            Circle::new(at, 4, self.colour.filled()).into_dyn()
        } else {
            TriangleMarker::new(at, 5, self.line()).into_dyn()
        }
    }
}

impl Look<'_> {
    fn mark(&self, s: &Series) -> Mark {
        let scenario = self.scenarios.iter().position(|n| *n == s.scenario);
        Mark {
            colour: PALETTE[scenario.unwrap_or(0) % PALETTE.len()],
            solid: self.servers.iter().position(|n| *n == s.server) == Some(0),
        }
    }
}

/// One chart: every series against connections on a log x axis, ticks at the measured counts.
fn draw_panel<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    x: X,
    y: Y,
    panel: Panel<'_>,
    all: &[Series],
    look: &Look<'_>,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("connections (log scale)")
        .y_desc(panel.y_desc)
        .x_label_formatter(&|v| format!("{}", v.round()))
        .y_label_formatter(panel.y_label)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(err)?;
    for s in all {
        let mark = look.mark(s);
        let (dash, gap) = mark.dash();
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (p.0, (panel.value)(p)))
            .filter(|p| p.1 > 0.0) // a log axis has no place for 0
            .collect();
        chart
            .draw_series(DashedLineSeries::new(pts.clone(), dash, gap, mark.line()))
            .map_err(err)?;
        chart
            .draw_series(pts.iter().map(|&p| mark.marker(p)))
            .map_err(err)?;
    }
    Ok(())
}

/// One legend for all panels, in its own column so it never hides a point.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    all: &[Series],
    look: &Look<'_>,
) -> Result<(), String> {
    let font =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, s) in all.iter().enumerate() {
        let mark = look.mark(s);
        let (dash, gap) = mark.dash();
        let y = 70 + 28 * i as i32;
        area.draw(&DashedPathElement::new(
            vec![(10, y), (50, y)],
            dash,
            gap,
            mark.line(),
        ))
        .map_err(err)?;
        area.draw(&mark.marker((30, y))).map_err(err)?;
        area.draw(&Text::new(
            format!("{} {}", s.server, s.scenario),
            (60, y),
            font.clone(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "server,scenario,conns,size,pipeline,msgs_per_s,p50_us,p99_us";

    #[test]
    fn reads_rows_by_column_name() {
        let csv =
            format!("{HEADER}\nsaythat,64B,10,64,1,1234.5,20,40\n\ntokio,64B,1,64,1,99,5,7\n");
        let points = parse(&csv).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].server, "saythat");
        assert_eq!(points[0].msgs_per_s, 1234.5);
        assert_eq!(points[1].p99_us, 7.0);
        let series = series(&points);
        assert_eq!(series.len(), 2);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_line() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse(HEADER).unwrap_err().contains("no data rows"));
        assert!(parse("server,conns\nx,1").unwrap_err().contains("scenario"));
        let short = format!("{HEADER}\nsaythat,64B,10");
        assert!(parse(&short).unwrap_err().starts_with("line 2: 3 fields"));
        let nan = format!("{HEADER}\nsaythat,64B,10,64,1,fast,20,40");
        assert!(parse(&nan).unwrap_err().contains("msgs_per_s `fast`"));
        let zero = format!("{HEADER}\nsaythat,64B,0,64,1,1,20,40");
        assert!(parse(&zero).unwrap_err().contains("out of range"));
    }

    #[test]
    fn http_scenarios_with_one_point_each_are_drawn_and_described() {
        let csv = format!(
            "{HEADER},framing\n\
             saythat,64B,10,64,1,1000,20,40,chunk\n\
             tokio,64B,10,64,1,900,20,40,chunk\n\
             saythat,GET,50,64,1,500,20,40,http\n\
             hyper,GET,50,64,1,400,20,40,http\n\
             saythat,GET,1000,64,1,600,20,40,http\n\
             saythat,GET x16,50,64,16,5000,20,40,http\n\
             hyper,POST 64B,50,64,1,300,20,40,http\n"
        );
        let all = series(&parse(&csv).unwrap());
        assert_eq!(all.len(), 6);
        assert_eq!(
            title(&all, "M"),
            "saythat vs a minimal tokio server and a minimal hyper server, loopback, closed \
             loop: M"
        );
        let lines = subtitle(&all);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.len() <= SUBTITLE_CHARS), "{lines:?}");
        let sub = lines.join("  ");
        for part in [
            "64B, 1024B: chunk",
            "GET: keep-alive",
            "GET x16: 16",
            "POST 64B: a",
        ] {
            assert!(sub.contains(part), "{sub}");
        }
        let svg = std::env::temp_dir().join(format!("plot-test-{}.svg", std::process::id()));
        draw(&all, &svg, "M").unwrap();
        let drawn = std::fs::read_to_string(&svg).unwrap();
        let _ = std::fs::remove_file(&svg);
        assert!(drawn.contains("hyper POST 64B") && drawn.contains("saythat GET x16"));
    }

    #[test]
    fn the_cpu_panel_draws_what_was_recorded_and_the_title_fits() {
        let csv = format!(
            "{HEADER},cpu_us_per_msg,framing\n\
             saythat,64B,10,64,1,1000,20,40,5.5,chunk\n\
             tokio,64B,10,64,1,900,20,40,,chunk\n\
             hyper,GET,50,64,1,400,20,40,6.25,http\n\
             saythat,WS x16,50,64,16,9000,20,40,0.45,ws\n\
             tungstenite,WS x16,50,64,16,8000,20,40,0.9,ws\n"
        );
        let points = parse(&csv).unwrap();
        assert_eq!(points[0].cpu_us, Some(5.5));
        assert_eq!(
            points[1].cpu_us, None,
            "an empty CPU field is no figure, not an error"
        );
        let bad = format!("{HEADER},cpu_us_per_msg\nsaythat,64B,10,64,1,1000,20,40,-1");
        assert!(parse(&bad)
            .unwrap_err()
            .contains("cpu_us_per_msg -1 is out of range"));
        let all = series(&points);
        let machine = "AMD EPYC 7B13 64-Core Processor, 2 cores, servers on CPU 0, load on CPU 1";
        let whole = title(&all, machine);
        assert!(whole.contains("tokio server, a minimal hyper server and a minimal tokio-"));
        let heading = wrap(&whole, TITLE_CHARS);
        assert_eq!(heading.len(), 2, "{heading:?}");
        assert_eq!(heading.join(" "), whole);
        // 15 px a character at 24 px bold, from 20 px in: inside the picture.
        assert!(heading
            .iter()
            .all(|l| 20 + 15 * l.chars().count() < SIZE.0 as usize));
        let sub = subtitle(&all).join("  ");
        assert!(sub.contains("WS x16: 16 in flight."), "{sub}");
        let svg = std::env::temp_dir().join(format!("plot-cpu-{}.svg", std::process::id()));
        draw(&all, &svg, machine).unwrap();
        let drawn = std::fs::read_to_string(&svg).unwrap();
        let _ = std::fs::remove_file(&svg);
        assert!(drawn.contains("Server CPU per message") && drawn.contains("0.5 µs"));
        assert!(drawn.contains("tungstenite WS x16"));
    }

    #[test]
    fn wrap_cuts_at_spaces() {
        assert_eq!(wrap("ab cd ef", 5), vec!["ab cd", "ef"]);
        assert_eq!(wrap("abcdefgh ij", 5), vec!["abcdefgh", "ij"]);
        assert_eq!(wrap("ab", 5), vec!["ab"]);
    }

    #[test]
    fn log_ticks_are_1_2_5_per_decade() {
        assert_eq!(
            ticks_125(15.0..1100.0),
            vec![20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert!(ticks_125(1.0..1.5).contains(&1.0));
    }

    #[test]
    fn numbers_read_short() {
        assert_eq!(short_count(120_000.0), "120k");
        assert_eq!(short_count(1_500_000.0), "1.5M");
        assert_eq!(short_us(850.0), "850 µs");
        assert_eq!(short_us(2_500.0), "2.5 ms");
        assert_eq!(short_cpu(0.5), "0.5 µs");
        assert_eq!(short_cpu(0.05), "0.05 µs");
        assert_eq!(short_cpu(20.0), "20 µs");
    }
}

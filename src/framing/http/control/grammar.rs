//! One control's value, read: the grammar of each control and alias (fortio's where fortio has
//! one), its bounds, and the exact text of each refusal. Pure and stateless: it never decides
//! which value wins or draws anything (the controls do), and never panics on any input.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode;

use crate::config::{DEFAULT_MAX_DELAY, DEFAULT_MAX_SIZE};

/// Most `header` controls one request may carry (query and headers together): each becomes a
/// line of the answer's head, which must fit in the connection's output.
pub const MAX_SET_HEADERS: usize = 32;
/// Longest name of a header a `header` control sets, in bytes.
pub const MAX_SET_HEADER_NAME: usize = 128;
/// Longest value of a header a `header` control sets, in bytes: with `MAX_SET_HEADERS`, an
/// answer's head grows by at most about 37 KiB.
pub const MAX_SET_HEADER_VALUE: usize = 1024;
/// Most choices in one weighted list (`503:10,429:5`): a draw walks them, so they stay few.
pub const MAX_CHOICES: usize = 16;
/// Largest piece of a `drip`: each piece is one write from the static filler, so it must fit
/// in the filler and in a socket's buffer at once.
pub const MAX_DRIP_BYTES: u32 = 16 * 1024;
/// A weight of 100 %: weights are kept in millionths, so `1.5` % is 15,000 and sums are exact.
pub(super) const WHOLE: u32 = 1_000_000;
/// Most characters of a refused value quoted back in a 400 body.
const MAX_QUOTED: usize = 64;

/// The bounds of the controls, from `--max-delay` and `--max-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLimits {
    /// Longest `delay`, and longest `drip` interval.
    pub max_delay: Duration,
    /// Largest `size`.
    pub max_size: u64,
}

impl Default for ControlLimits {
    fn default() -> Self {
        ControlLimits {
            max_delay: DEFAULT_MAX_DELAY,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// A slow body: pieces of `bytes` every `every`, sent chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drip {
    /// Bytes per piece, 1 to `MAX_DRIP_BYTES`.
    pub bytes: u32,
    /// Time between two pieces, at most `--max-delay`.
    pub every: Duration,
}

/// A refused control: `Display` is the exact body of its 400, one line and `"\n"`, naming the
/// control, the value and the accepted form or the flag that bounds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    control: &'static str,
    message: String,
}

impl ControlError {
    /// The name of the refused control (`delay`, or an alias such as `x-set-response-delay-ms`).
    pub fn control(&self) -> &'static str {
        self.control
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "control {}: {}", self.control, self.message)
    }
}

impl std::error::Error for ControlError {}

/// Each control and alias a query parameter or a header can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    Status,
    Delay,
    Size,
    Header,
    Drip,
    Close,
    Reset,
    Format,
    /// mendhak's `x-set-response-status-code`.
    StatusCode,
    /// mendhak's `x-set-response-delay-ms`.
    DelayMs,
    /// The Gateway API's `X-Echo-Set-Header: K:V,K2:V2` (header only).
    EchoSetHeader,
}

/// The controls named after `X-Saythat-` and as query parameters.
const NAMED: [(&str, Control); 8] = [
    ("status", Control::Status),
    ("delay", Control::Delay),
    ("size", Control::Size),
    ("header", Control::Header),
    ("drip", Control::Drip),
    ("close", Control::Close),
    ("reset", Control::Reset),
    ("format", Control::Format),
];
const STATUS_CODE: &str = "x-set-response-status-code";
const DELAY_MS: &str = "x-set-response-delay-ms";
const ECHO_SET_HEADER: &str = "x-echo-set-header";
const HEADER_PREFIX: &[u8] = b"x-saythat-";

impl Control {
    fn name(self) -> &'static str {
        match self {
            Control::StatusCode => STATUS_CODE,
            Control::DelayMs => DELAY_MS,
            Control::EchoSetHeader => ECHO_SET_HEADER,
            named => NAMED
                .iter()
                .find(|(_, control)| *control == named)
                .map_or("", |(name, _)| name),
        }
    }

    /// The control a query parameter names (exact, lower case, as fortio and mendhak take them).
    pub(super) fn from_query_key(key: &[u8]) -> Option<Control> {
        match key {
            b"status" => Some(Control::Status),
            b"delay" => Some(Control::Delay),
            b"size" => Some(Control::Size),
            b"header" => Some(Control::Header),
            b"drip" => Some(Control::Drip),
            b"close" => Some(Control::Close),
            b"reset" => Some(Control::Reset),
            b"format" => Some(Control::Format),
            _ if key == STATUS_CODE.as_bytes() => Some(Control::StatusCode),
            _ if key == DELAY_MS.as_bytes() => Some(Control::DelayMs),
            _ => None,
        }
    }

    /// The control a header field names, in any case. Cheap for other `x-` names: a length and
    /// a prefix compared, no allocation.
    pub(super) fn from_header_name(name: &[u8]) -> Option<Control> {
        if name.len() > HEADER_PREFIX.len()
            && name[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX)
        {
            let rest = &name[HEADER_PREFIX.len()..];
            return NAMED
                .iter()
                .find(|(known, _)| rest.eq_ignore_ascii_case(known.as_bytes()))
                .map(|&(_, control)| control);
        }
        [
            (STATUS_CODE, Control::StatusCode),
            (DELAY_MS, Control::DelayMs),
            (ECHO_SET_HEADER, Control::EchoSetHeader),
        ]
        .into_iter()
        .find(|(alias, _)| name.eq_ignore_ascii_case(alias.as_bytes()))
        .map(|(_, control)| control)
    }

    /// The accepted form, for a refusal.
    fn form(self) -> &'static str {
        match self {
            Control::Status | Control::StatusCode => {
                "use 503 (100 to 599), or weighted 503:10,429:1.5 (percent; the rest 200)"
            }
            Control::Delay => "use 150ms, 2s, 10us or weighted 1ms:50,10ms:45 (percent)",
            Control::DelayMs => "use a number of milliseconds, e.g. 150",
            Control::Size => "use 1024 (bytes), or weighted 1024:10,64:90 (percent; the rest echo)",
            Control::Header => {
                "use Name:Value, a token of at most 128 bytes and a value of at most 1024 without \
                 control characters"
            }
            Control::EchoSetHeader => {
                "use Name:Value,Name2:Value2, tokens of at most 128 bytes and values of at most \
                 1024 without control characters or commas"
            }
            Control::Drip => "use BYTES:INTERVAL, e.g. 16:100ms (1 to 16384 bytes)",
            Control::Close => "use a percent from 0 to 100, e.g. 5",
            Control::Reset => {
                "use a percent from 0 to 100, then :body to reset mid-body, e.g. 5 or 5:body"
            }
            Control::Format => "use json",
        }
    }

    /// What a value of this control is, for "... is not {what}".
    fn what(self) -> &'static str {
        match self {
            Control::Status | Control::StatusCode => "a status",
            Control::Delay | Control::DelayMs => "a duration",
            Control::Size => "a size",
            Control::Header | Control::EchoSetHeader => "a header",
            Control::Drip => "a drip",
            Control::Close | Control::Reset => "a percent",
            Control::Format => "a format",
        }
    }

    pub(super) fn malformed(self, value: &[u8]) -> ControlError {
        self.error(format!(
            "{} is not {}; {}",
            quote(value),
            self.what(),
            self.form()
        ))
    }

    pub(super) fn error(self, message: String) -> ControlError {
        ControlError {
            control: self.name(),
            message,
        }
    }

    pub(super) fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The pairs of a query in order, each key and value decoded (`+` a space, then `%XX`); a
/// parameter without `=` has an empty value, empty parameters (`a&&b`) are skipped. Borrowed
/// unless something was encoded.
pub(crate) fn query_pairs(query: &[u8]) -> impl Iterator<Item = (Cow<'_, [u8]>, Cow<'_, [u8]>)> {
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            (form_decode(key), form_decode(value))
        })
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn form_decode(text: &[u8]) -> Cow<'_, [u8]> {
    if !text.iter().any(|&b| b == b'+' || b == b'%') {
        return Cow::Borrowed(text);
    }
    let spaced: Vec<u8> = text
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    Cow::Owned(percent_decode(&spaced).collect())
}

/// `value` without the spaces and tabs around it (a header's optional whitespace).
pub(super) fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t');
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(start), Some(end)) => &value[start..=end],
        _ => &[],
    }
}

/// A refused value as it is quoted in a 400: escaped to stay one printable line, and cut short.
fn quote(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut cut: String = text.chars().take(MAX_QUOTED).collect();
    let more = text.chars().count() > MAX_QUOTED;
    cut = format!("{cut:?}");
    if more {
        cut.push('…');
    }
    cut
}

/// A duration as a refusal shows it: the largest unit that says it exactly.
fn show(duration: Duration) -> String {
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        format!("{}s", duration.as_secs())
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", duration.as_micros())
    } else {
        format!("{}ns", duration.as_nanos())
    }
}

fn past_max_delay(control: Control, delay: Duration, limits: &ControlLimits) -> ControlError {
    control.error(format!(
        "{} is past --max-delay {}; raise --max-delay or ask for less",
        show(delay),
        show(limits.max_delay)
    ))
}

/// `v` (100 %) or `v:w,v:w,...` (percents adding up to at most 100).
pub(super) fn weighted<T>(
    control: Control,
    text: &str,
    one: impl Fn(&str) -> Result<T, ControlError>,
) -> Result<Vec<(T, u32)>, ControlError> {
    if !text.contains([',', ':']) {
        return Ok(vec![(one(text)?, WHOLE)]);
    }
    let mut choices = Vec::new();
    let mut total: u32 = 0;
    for choice in text.split(',') {
        if choices.len() == MAX_CHOICES {
            return Err(control.error(format!(
                "{} has more than {MAX_CHOICES} choices; ask for at most {MAX_CHOICES}",
                quote(text.as_bytes())
            )));
        }
        let (value, weight) = choice
            .split_once(':')
            .ok_or_else(|| control.malformed(text.as_bytes()))?;
        let weight = percent(weight).ok_or_else(|| control.malformed(text.as_bytes()))?;
        choices.push((one(value)?, weight));
        // At most MAX_CHOICES weights of at most WHOLE each: no overflow.
        total += weight;
    }
    if total > WHOLE {
        let rest = match control {
            Control::Status | Control::StatusCode => "the rest are answered 200",
            Control::Size => "the rest echo",
            _ => "the rest are not delayed",
        };
        return Err(control.error(format!(
            "{} weighs {}% in all, past 100%; weights are percents of the answers, and {rest}",
            quote(text.as_bytes()),
            show_percent(total)
        )));
    }
    Ok(choices)
}

/// A percent from 0 to 100 (digits, at most one `.`), in millionths of the whole.
pub(super) fn percent(text: &str) -> Option<u32> {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let dots = text.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || digits + dots != text.len() || dots > 1 || text.len() > 16 {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    // Checked first, so the cast below cannot saturate.
    (value <= 100.0).then(|| (value * 10_000.0).round() as u32)
}

/// Millionths of the whole as a percent, without trailing zeros.
fn show_percent(millionths: u32) -> String {
    let text = format!("{}.{:04}", millionths / 10_000, millionths % 10_000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(super) fn parse_status(control: Control, text: &str) -> Result<u16, ControlError> {
    text.parse::<u16>()
        .ok()
        .filter(|status| text.len() == 3 && (100..=599).contains(status))
        .ok_or_else(|| control.malformed(text.as_bytes()))
}

pub(super) fn parse_delay(
    control: Control,
    text: &str,
    limits: &ControlLimits,
) -> Result<Duration, ControlError> {
    let delay = humantime::parse_duration(text).map_err(|_| control.malformed(text.as_bytes()))?;
    if delay > limits.max_delay {
        return Err(past_max_delay(control, delay, limits));
    }
    Ok(delay)
}

pub(super) fn parse_millis(
    control: Control,
    text: &str,
    limits: &ControlLimits,
) -> Result<Duration, ControlError> {
    let millis = digits(text).ok_or_else(|| control.malformed(text.as_bytes()))?;
    let delay = Duration::from_millis(millis);
    if delay > limits.max_delay {
        return Err(past_max_delay(control, delay, limits));
    }
    Ok(delay)
}

pub(super) fn parse_size(
    control: Control,
    text: &str,
    limits: &ControlLimits,
) -> Result<u64, ControlError> {
    let size = digits(text).ok_or_else(|| control.malformed(text.as_bytes()))?;
    if size > limits.max_size {
        return Err(control.error(format!(
            "{size} is past --max-size {}; raise --max-size or ask for less",
            limits.max_size
        )));
    }
    Ok(size)
}

/// A number of ASCII digits only (no sign, no space) that fits a `u64`.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub(super) fn parse_drip(
    control: Control,
    text: &str,
    limits: &ControlLimits,
) -> Result<Drip, ControlError> {
    let malformed = || control.malformed(text.as_bytes());
    let (bytes, every) = text.split_once(':').ok_or_else(malformed)?;
    let bytes = digits(bytes)
        .and_then(|bytes| u32::try_from(bytes).ok())
        .filter(|bytes| (1..=MAX_DRIP_BYTES).contains(bytes))
        .ok_or_else(malformed)?;
    let every = humantime::parse_duration(every).map_err(|_| malformed())?;
    if every > limits.max_delay {
        return Err(past_max_delay(control, every, limits));
    }
    Ok(Drip { bytes, every })
}

/// Headers that frame the answer or its connection: the server sets them, and a second value
/// would make the answer unreadable or the connection's fate ambiguous.
const FRAMING_HEADERS: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// `Name:Value`: a token, and a field value (visible characters, spaces and tabs inside, UTF-8).
pub(super) fn parse_set_header(
    control: Control,
    field: &str,
) -> Result<(&str, &str), ControlError> {
    let malformed = || control.malformed(field.as_bytes());
    let (name, value) = field.split_once(':').ok_or_else(malformed)?;
    let (name, value) = (
        name.trim_matches([' ', '\t']),
        value.trim_matches([' ', '\t']),
    );
    if name.is_empty() || name.len() > MAX_SET_HEADER_NAME || !name.bytes().all(is_tchar) {
        return Err(malformed());
    }
    let visible = |b: u8| b == b'\t' || b == b' ' || (b'!'..=b'~').contains(&b) || b >= 0x80;
    if value.len() > MAX_SET_HEADER_VALUE || !value.bytes().all(visible) {
        return Err(malformed());
    }
    if FRAMING_HEADERS
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
    {
        return Err(control.error(format!(
            "{} frames the answer and is the server's to set; use size, drip or close instead",
            quote(name.as_bytes())
        )));
    }
    Ok((name, value))
}

/// RFC 9110's `tchar`, the characters of a token.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percents_show_exactly() {
        assert_eq!(show(Duration::from_secs(10)), "10s");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_micros(10)), "10us");
        assert_eq!(show(Duration::from_nanos(1_000_000_001)), "1000000001ns");
        assert_eq!(show_percent(WHOLE), "100");
        assert_eq!(show_percent(15_000), "1.5");
        assert_eq!(show_percent(1), "0.0001");
        assert_eq!(percent("1.5"), Some(15_000));
        for bad in [
            "", ".", "1..5", "1e2", "inf", "NaN", "+5", "-0", " 5", "100.0001",
        ] {
            assert_eq!(percent(bad), None, "{bad:?}");
        }
    }
}

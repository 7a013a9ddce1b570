//! Whether a Host value is a host: RFC 3986's `host [ ":" port ]`, checked in one table pass for
//! the common case. Pure and allocation-free; it must never accept a value a proxy could read as
//! a different host (a list, userinfo, a path).

/// RFC 3986's `host [ ":" port ]`, as Host must be (RFC 9110 §7.2): an IP-literal in brackets
/// (IPv6, or IPvFuture), or a reg-name (which covers IPv4), then perhaps a port of digits.
/// Stricter than the grammar in one place: a reg-name's sub-delims include `,`, but a comma in
/// Host reads as a list of hosts to a proxy that splits it, so it is refused.
#[inline(always)]
pub(super) fn valid_host(value: &[u8]) -> bool {
    // The common case in one pass over a table, no search: reg-name bytes, then `:` and digits.
    let mut at = 0;
    while at < value.len() && REG_NAME[usize::from(value[at])] == 1 {
        at += 1;
    }
    if at == value.len() {
        return at > 0;
    }
    if value[at] == b':' && at > 0 {
        return value[at + 1..].iter().all(u8::is_ascii_digit);
    }
    valid_host_slow(value)
}

/// The rest of `host [":" port]`: IP-literals and percent-escapes.
#[cold]
fn valid_host_slow(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(close) = memchr::memchr(b']', value) else {
            return false;
        };
        if !valid_ip_literal(&value[1..close]) {
            return false;
        }
        match &value[close + 1..] {
            [] => return true,
            [b':', port @ ..] => return port.iter().all(u8::is_ascii_digit),
            _ => return false,
        }
    } else {
        let end = memchr::memchr(b':', value).unwrap_or(value.len());
        (&value[..end], value.get(end + 1..).unwrap_or(&[]))
    };
    let reg_name_ok = host
        .iter()
        .enumerate()
        .all(|(at, &b)| match REG_NAME[usize::from(b)] {
            1 => true,
            // A `%` must start an escape of two hex digits (which are reg-name bytes themselves).
            _ => {
                b == b'%'
                    && host
                        .get(at + 1..at + 3)
                        .is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit))
            }
        });
    // An empty host is valid in a URI, but not as the host an HTTP request is for.
    !host.is_empty() && reg_name_ok && port.iter().all(u8::is_ascii_digit)
}

/// The bytes of a reg-name (RFC 3986 §3.2.2): unreserved and sub-delims but `,` (1); `%` starts
/// an escape. A table, as the check runs on every request.
static REG_NAME: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'!' | b'$')
            || matches!(c, b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b';' | b'=')
        {
            table[b] = 1;
        }
        b += 1;
    }
    table
};

/// What is between the brackets of an IP-literal: an IPv6 address (no zone), or IPvFuture
/// (`v` HEXDIG+ `.` then unreserved, sub-delims or `:`).
fn valid_ip_literal(literal: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = literal {
        let dot = memchr::memchr(b'.', rest).unwrap_or(0);
        return dot > 0
            && rest[..dot].iter().all(u8::is_ascii_hexdigit)
            && rest.len() > dot + 1
            && rest[dot + 1..]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b));
    }
    std::str::from_utf8(literal).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
}

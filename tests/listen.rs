//! Listen addresses: IPv6 loopback, and several listeners served by the one loop.

mod common;

use std::io;
use std::net::SocketAddr;

use common::{connect, roundtrip, TestServer};
use saythat::{Config, ListenError};

/// Starts a server on `listen`, or `None` (with a note on stderr) when this machine has no IPv6
/// loopback, the one failure that is the machine's and not the server's.
fn start_or_skip(listen: Vec<SocketAddr>) -> Option<TestServer> {
    let config = Config {
        listen,
        ..Config::loopback()
    };
    match TestServer::try_start(&config) {
        Ok(server) => Some(server),
        Err(e) => {
            let no_ipv6 = e.downcast_ref::<ListenError>().is_some_and(|e| {
                e.addr.is_ipv6() && e.source.kind() == io::ErrorKind::AddrNotAvailable
            });
            assert!(no_ipv6, "cannot start a server on {:?}: {e}", config.listen);
            eprintln!("skipped: this machine has no IPv6 loopback ({e})");
            None
        }
    }
}

fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().expect("an address")
}

fn v6() -> SocketAddr {
    "[::1]:0".parse().expect("an address")
}

#[test]
fn ipv6_loopback_listener_answers() {
    let Some(server) = start_or_skip(vec![v6()]) else {
        return;
    };
    assert!(server.addr().is_ipv6(), "bound {}", server.addr());
    assert_ne!(server.addr().port(), 0, "port 0 must be resolved");
    let mut client = connect(server.addr());
    roundtrip(&mut client, b"over IPv6");
}

#[test]
fn ipv4_and_ipv6_listeners_both_answer() {
    let Some(server) = start_or_skip(vec![v4(), v6()]) else {
        return;
    };
    assert_eq!(server.addrs.len(), 2, "bound {:?}", server.addrs);
    assert!(server.addrs[0].is_ipv4() && server.addrs[1].is_ipv6());
    // Both open at once, and each answered on its own connection.
    let mut clients: Vec<_> = server.addrs.iter().map(|&addr| connect(addr)).collect();
    for (client, addr) in clients.iter_mut().zip(&server.addrs) {
        let message = format!("via {addr}");
        roundtrip(client, message.as_bytes());
    }
    let summary = server.abort();
    assert_eq!(summary.accepted, 2, "connections accepted");
}

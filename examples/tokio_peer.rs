//! A minimal tokio echo server with saythat's prefix and framings, to compare against:
//!
//!     cargo run --release --example tokio_peer -- 127.0.0.1:0 'You say that ' [chunk|line]
//!
//! Prints `listening on ADDR` on stderr, like `saythat serve`, and serves until killed.

#[path = "peer/tokio_echo.rs"]
mod tokio_echo;

use saythat::config::FramingKind;

const USAGE: &str = "usage: tokio_peer [ADDR [PREFIX [chunk|line]]]";

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let prefix = args
        .next()
        .unwrap_or_else(|| saythat::config::DEFAULT_PREFIX.into());
    let framing = match args.next().as_deref() {
        None | Some("chunk") => FramingKind::Chunk,
        Some("line") => FramingKind::Line,
        Some(other) => {
            eprintln!("error: unknown framing {other:?}; give chunk or line\n{USAGE}");
            std::process::exit(2);
        }
    };
    if args.next().is_some() {
        eprintln!("error: too many arguments\n{USAGE}");
        std::process::exit(2);
    }
    let addr = match addr.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("error: {addr:?} is not an address ({e}); give e.g. 127.0.0.1:8081\n{USAGE}");
            std::process::exit(2);
        }
    };
    match tokio_echo::spawn_with(addr, prefix.into_bytes(), framing) {
        // One write, so a script reading the log never sees half the line.
        Ok(local) => {
            let line = format!("listening on {local}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {}", saythat::describe(&e));
            std::process::exit(1);
        }
    }
    loop {
        std::thread::park();
    }
}

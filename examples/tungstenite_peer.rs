//! A minimal tokio-tungstenite WebSocket echo server answering like saythat's WebSocket (each
//! message answered by the prefix and the message, same type), to compare against:
//!
//!     cargo run --release --example tungstenite_peer -- 127.0.0.1:0 'You say that '
//!
//! Prints `listening on ADDR` on stderr, like `saythat serve`, and serves until killed.

#[path = "peer/tungstenite_echo.rs"]
mod tungstenite_echo;

const USAGE: &str = "usage: tungstenite_peer [ADDR [PREFIX]]";

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let prefix = args
        .next()
        .unwrap_or_else(|| saythat::config::DEFAULT_PREFIX.into());
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
    match tungstenite_echo::spawn(addr, prefix) {
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

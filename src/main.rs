//! The `saythat` command line: parses arguments and hands them to the library.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use log::{info, warn};
use saythat::client::{self, Input, SendArgs};
use saythat::config::FlagError;
use saythat::load::{LoadArgs, LoadError, LoadErrorKind};
use saythat::systemd::{self, ActivationError};
use saythat::tls_client::{TlsArgs, TlsClient, TlsConfigError, ALPN_HTTP1};
use saythat::{Config, Server};

/// A prefixed-echo TCP daemon: every message is answered by `You say that ` and the message.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(Config),
    /// Send a message (or stdin) and print the answers.
    Send(SendArgs),
    /// Load-test a server: many connections, every answer checked, latency percentiles.
    Load(LoadArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Command::Serve(config) => {
            // Only an address the user gave conflicts with inherited sockets, not the default.
            let listen_given = matches
                .subcommand_matches("serve")
                .and_then(|serve| serve.value_source("listen"))
                .is_some_and(|source| source != ValueSource::DefaultValue);
            serve(&config, listen_given)
        }
        Command::Send(args) => send(&args),
        Command::Load(args) => load(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // Bad flag combinations are usage errors, like the ones clap finds itself.
            let usage = e
                .downcast_ref::<LoadError>()
                .is_some_and(|e| e.kind() == LoadErrorKind::InvalidArgs)
                || e.downcast_ref::<ActivationError>()
                    .is_some_and(ActivationError::is_usage)
                || e.downcast_ref::<FlagError>().is_some()
                || e.downcast_ref::<TlsConfigError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Serves on the sockets systemd passed (socket activation), else on `--listen`; tells systemd
/// when it is ready and when it stops if `$NOTIFY_SOCKET` is set.
fn serve(
    config: &Config,
    listen_given: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Before any thread starts: it unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES.
    let inherited = systemd::take_listeners()?;
    systemd::check_listen_flag(&inherited, listen_given)?;
    let mut server = if inherited.is_empty() {
        Server::bind(config)?
    } else {
        for socket in &inherited {
            info!(
                "socket activation: serving fd {} ({}), bound to {}",
                socket.fd, socket.name, socket.addr
            );
        }
        if config.reuse_port {
            warn!(
                "--reuse-port does not apply to sockets passed by the service manager (set \
                 ReusePort= in the .socket unit)"
            );
        }
        Server::with_listeners(config, inherited.into_iter().map(|s| s.listener).collect())?
    };
    if let Some(notifier) = systemd::Notifier::from_env() {
        server.notify_systemd(notifier);
    }
    server
        .watch_signals()
        .map_err(|e| format!("cannot watch the signals (INT, TERM, QUIT, HUP, USR1, USR2): {e}"))?;
    server
        .run()
        .map_err(|e| format!("the event loop failed: {e}"))?;
    Ok(())
}

fn send(args: &SendArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let input = match args.message.as_deref() {
        Some(client::STDIN_ARG) => Input::Stream(Box::new(io::stdin())),
        Some(message) => Input::Message(message.as_bytes()),
        None if client::stdin_carries_data() => Input::Stream(Box::new(io::stdin())),
        None => Input::Message(client::DEFAULT_MESSAGE.as_bytes()),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let timeout = Duration::from_secs(args.timeout);
    let received = match &args.ws {
        Some(target) => {
            let mut target = target.clone();
            if args.tls.enabled() {
                if target.tls == Some(false) {
                    let why = "--tls cannot speak to a ws:// URL: write it wss://";
                    return Err(TlsConfigError(why.to_string()).into());
                }
                target.tls = Some(true);
            }
            let tls = match target.tls {
                Some(true) => {
                    let wss = TlsArgs {
                        tls: true,
                        ..args.tls.clone()
                    };
                    let client = TlsClient::from_args(&wss, &[ALPN_HTTP1])?;
                    client
                        .map(|c| c.server_name(target.host()).map(|name| (c, name)))
                        .transpose()?
                }
                _ => None,
            };
            let tls = tls.as_ref().map(|(c, name)| (c, name.clone()));
            client::send_ws(&target, tls, timeout, input, &mut out)?
        }
        None => match TlsClient::from_args(&args.tls, &[])? {
            Some(tls) => {
                let name = tls.server_name(&args.addr.ip().to_string())?;
                client::send_tls(args.addr, timeout, &tls, name, input, &mut out)?
            }
            None => client::send(args.addr, timeout, input, &mut out)?,
        },
    };
    // Answers are printed byte for byte; only a terminal gets a newline to end the last line.
    if received.last_byte.is_some_and(|b| b != b'\n') && stdout.is_terminal() {
        let _ = writeln!(out);
    }
    Ok(())
}

fn load(args: &LoadArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let report = saythat::load::run(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    match report.failure() {
        None => Ok(()),
        Some(why) => Err(why.into()),
    }
}

//! The `saythat` command line: parses arguments and hands them to the library.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use saythat::client::{self, Input, SendArgs};
use saythat::load::{LoadArgs, LoadError, LoadErrorKind};
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
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Command::Serve(config) => serve(&config),
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
                .is_some_and(|e| e.kind() == LoadErrorKind::InvalidArgs);
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn serve(config: &Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut server = Server::bind(config)?;
    server
        .watch_signals()
        .map_err(|e| format!("cannot watch SIGINT and SIGTERM: {e}"))?;
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
    let received = client::send(
        args.addr,
        Duration::from_secs(args.timeout),
        input,
        &mut out,
    )?;
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

//! The `solo` binary: `solo serve` runs the daemon, `solo __launcher` is the
//! daemon's single-threaded launcher (internal), and every other
//! subcommand is a client of the gRPC API.

use clap::{Parser, Subcommand};
use solo::cli::{self, Global};
use solo::daemon::{self, ServeArgs};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "solo", version, about = "A Linux supervisor that runs every service an AI agent deploys as its own sandboxed OS process", long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand)]
#[command(defer = true)]
enum Top {
    /// Run the supervisor daemon (as root).
    Serve(ServeArgs),
    /// Serve the API's tools to an agent over the Model Context Protocol (stdio, or HTTP on loopback).
    Mcp(solo::mcp::McpArgs),
    /// Serve the operator's live web view (service tree, usage graphs, events, profiles, grants).
    Ui(solo::ui::UiArgs),
    #[command(flatten)]
    Client(cli::Command),
}

fn main() -> ExitCode {
    // The launcher must start before anything else: it is exec'd by the
    // daemon with its control socket as stdin and stays single-threaded.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__launcher") {
        #[allow(unsafe_code)]
        // SAFETY: fd 0 is the socket the daemon passed us, owned by nobody else in this fresh process.
        let sock = unsafe { OwnedFd::from_raw_fd(0) };
        solo::launcher::server::run(sock);
    }
    cli::timing::start();
    // Rust ignores SIGPIPE; a CLI piped into `head` should just stop.
    if std::env::args_os().nth(1).is_none_or(|a| a != "serve") {
        let _ = solo::sandbox::sys::default_signal(libc::SIGPIPE);
    }
    let cli = Cli::parse();
    cli::timing::mark("parsed");
    let result = match cli.cmd {
        Top::Serve(args) => daemon::run(args, cli.global.socket).map(|()| ExitCode::SUCCESS),
        Top::Mcp(args) => match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt.block_on(solo::mcp::run(&cli.global, args)),
            Err(e) => Err(e.into()),
        },
        Top::Ui(args) => match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt.block_on(solo::ui::run(&cli.global, args)),
            Err(e) => Err(e.into()),
        },
        Top::Client(cmd) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => {
                cli::timing::mark("runtime");
                rt.block_on(cli::run(&cli.global, cmd))
            }
            Err(e) => Err(e.into()),
        },
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("solo: {}", chain(&e));
            ExitCode::FAILURE
        }
    };
    cli::timing::report();
    code
}

/// An error and its causes, `: `-joined, skipping a cause whose text the
/// message already contains (many errors print their source themselves).
fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

//! The `tollgate` binary: the server (`tollgate serve`) and the admin CLI.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tollgate_server::cli::{Cli, Command, NotAllowed, run_client};
use tollgate_server::serve::{Server, shutdown_signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                init_logging();
                let config = args.resolve()?;
                let server = Server::bind(&config).await?;
                server.run(shutdown_signal()).await
            }
            command => run_client(&cli.url, cli.token, cli.output, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `can-i` answered no and said so.
        Err(err) if err.is::<NotAllowed>() => ExitCode::FAILURE,
        Err(err) => {
            // One line naming the cause chain.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Structured logs to stderr; level from `TOLLGATE_LOG` (or `RUST_LOG`), default info.
fn init_logging() {
    let filter = std::env::var("TOLLGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

//! The `herald` command: parse the command line, start telemetry, dispatch.

use clap::Parser;
use herald::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // reqwest is built without a crypto provider of its own; install ring once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    herald::telemetry::init(cli.log_format());
    match cli.run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("herald: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The `herald` command: parse the command line, start telemetry, dispatch.

use herald::cli::Cli;
use herald::config::LoadError;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // reqwest is built without a crypto provider of its own; install ring once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::load(&std::env::args_os().collect::<Vec<_>>()) {
        Ok(cli) => cli,
        Err(LoadError::Clap(error)) => error.exit(),
        Err(LoadError::File(message)) => {
            eprintln!("herald: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    herald::telemetry::init(cli.log_format());
    match cli.run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("herald: {}", herald::cli::error_line(&error));
            // A configuration refused as a whole exits 2, like a bad flag; anything else 1.
            if error
                .downcast_ref::<herald::delivery::PlanErrors>()
                .is_some()
            {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

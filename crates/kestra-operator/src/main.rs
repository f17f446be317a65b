#![forbid(unsafe_code)]

use clap::Parser;
use kestra_operator::config::{Cli, Command};

// jemalloc returns freed pages to the system on its own; glibc's malloc kept them in per-thread
// arenas (steady-state RSS and CPU compared in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            kestra_operator::operator::init_logging(args.log_format, &args.log_level);
            match kestra_operator::operator::run(*args).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Crds => match kestra_operator::crd::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot render the CRDs: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Version => {
            println!("kestra-operator {}", env!("CARGO_PKG_VERSION"));
            std::process::ExitCode::SUCCESS
        }
    }
}

//! The `kura` command: parse the command line, load the project, run.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kura::Config;

#[derive(Parser)]
#[command(
    name = "kura",
    version,
    about = "A local-first data workbench in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project: project.yml, schedules.yml, data/uploads/, .kura/
    Init {
        /// Where to create it (default: the current directory)
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite the configuration files of an existing project (data is kept)
        #[arg(long)]
        force: bool,
    },
    /// Serve the workbench and its API
    Serve {
        /// The project directory (default: the current directory)
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Port to listen on (default: platform.port, 8800)
        #[arg(long)]
        port: Option<u16>,
        /// Address to bind (default: platform.bind, 127.0.0.1)
        #[arg(long)]
        bind: Option<IpAddr>,
    },
    /// Load new and changed files now (asks the running server, or works on its own)
    Sync {
        /// Only this source (default: every enabled source)
        source: Option<String>,
        /// The project directory
        #[arg(long, default_value = ".")]
        project: PathBuf,
        /// Reload every file, changed or not
        #[arg(long)]
        full_refresh: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { dir, force } => {
            let files = kura::project::init(&dir, force)?;
            println!("Created a Kura project in {}:", dir.display());
            for f in files {
                println!("  {}", f.display());
            }
            println!();
            println!("Next:");
            println!(
                "  kura serve {}        # then open http://127.0.0.1:8800",
                dir.display()
            );
            println!(
                "  drop CSV, JSON or Parquet files into {}",
                dir.join("data/uploads").display()
            );
            Ok(())
        }
        Command::Serve { dir, port, bind } => {
            init_tracing();
            let mut config = Config::load(&dir)?;
            if let Some(port) = port {
                config.platform.port = port;
            }
            if let Some(bind) = bind {
                config.platform.bind = bind;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("kura-rt")
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(kura::app::run(config))
        }
        Command::Sync {
            source,
            project,
            full_refresh,
        } => {
            init_tracing_quiet();
            let config = Config::load(&project)?;
            if kura::cli::sync_command(config, source, full_refresh)? {
                Ok(())
            } else {
                anyhow::bail!("some files did not load (see above)")
            }
        }
    }
}

/// For one-shot commands: warnings and errors only, unless `RUST_LOG` says otherwise.
fn init_tracing_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

/// Logs to stderr; `RUST_LOG` overrides the default (`info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

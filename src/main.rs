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
    /// Build the selected models (dbt's `run`)
    Run(ModelArgs),
    /// Run the data tests of the selected models
    Test(ModelArgs),
    /// Seeds, models and tests in DAG order; a failed test stops what depends on it
    Build(ModelArgs),
    /// Load the seed CSV files as tables
    Seed(ModelArgs),
    /// Print the compiled SQL of a model (or of every model)
    Compile {
        model: Option<String>,
        #[arg(long, default_value = ".")]
        project: PathBuf,
    },
    /// List the project's nodes (sources, seeds, models) with their relations
    Ls(ModelArgs),
    /// Check schedules.yml, or list its schedules with their next run
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
        /// The project directory
        #[arg(long, default_value = ".", global = true)]
        project: PathBuf,
    },
    /// Manage user accounts (works whether or not the server is running)
    User {
        #[command(subcommand)]
        action: UserAction,
        /// The project directory
        #[arg(long, default_value = ".", global = true)]
        project: PathBuf,
    },
}

#[derive(clap::Args)]
struct ModelArgs {
    /// dbt selectors: a name, +name, name+, tag:x, path:models/marts, source:x+
    #[arg(long, short = 's', num_args = 1..)]
    select: Vec<String>,
    #[arg(long, num_args = 1..)]
    exclude: Vec<String>,
    /// Rebuild incremental models from scratch
    #[arg(long)]
    full_refresh: bool,
    /// The project directory
    #[arg(long, default_value = ".")]
    project: PathBuf,
}

fn models(args: ModelArgs, command: kura::models::cli::ModelsCommand) -> anyhow::Result<()> {
    init_tracing_quiet();
    let config = Config::load(&args.project)?;
    let selection = kura::models::cli::Selection {
        select: args.select,
        exclude: args.exclude,
        full_refresh: args.full_refresh,
    };
    if kura::models::cli::models_command(config, command, selection)? {
        Ok(())
    } else {
        anyhow::bail!("the run did not succeed (see above)")
    }
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Check schedules.yml against the project's sources; every problem is listed
    Validate,
    /// Each schedule with its cron, time zone, sources and next run
    List,
    /// Run one schedule's job now and wait for it (through the server when one runs)
    Run { name: String },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add an active user with a temporary password (printed once; changed at first sign-in)
    Add {
        email: String,
        /// admin, editor or viewer
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Give a user a new temporary password (printed once); their sessions end
    ResetPassword { email: String },
    /// List users
    List,
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
            let state_dir = dir.join(".kura");
            let admin_password = with_meta(&state_dir, |meta| async move {
                kura::auth::admin::bootstrap_admin(&meta).await
            })?;
            if let Some(password) = admin_password {
                println!();
                println!(
                    "The first admin account (shown only now; you choose a new password at first sign-in):"
                );
                println!("  email:    admin@localhost");
                println!("  password: {password}");
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
        Command::Run(args) => models(args, kura::models::cli::ModelsCommand::Run),
        Command::Test(args) => models(args, kura::models::cli::ModelsCommand::Test),
        Command::Build(args) => models(args, kura::models::cli::ModelsCommand::Build),
        Command::Seed(args) => models(args, kura::models::cli::ModelsCommand::Seed),
        Command::Ls(args) => models(args, kura::models::cli::ModelsCommand::Ls),
        Command::Compile { model, project } => models(
            ModelArgs {
                select: Vec::new(),
                exclude: Vec::new(),
                full_refresh: false,
                project,
            },
            kura::models::cli::ModelsCommand::Compile(model),
        ),
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
        Command::Schedule { action, project } => {
            init_tracing_quiet();
            schedule_command(&project, &action)
        }
        Command::User { action, project } => {
            init_tracing_quiet();
            user_command(&project, action)
        }
    }
}

fn schedule_command(project: &std::path::Path, action: &ScheduleAction) -> anyhow::Result<()> {
    let config = Config::load(project)?;
    let listing = match action {
        ScheduleAction::Run { name } => {
            return if kura::cli::schedule_run_command(config, name)? {
                Ok(())
            } else {
                anyhow::bail!("the job did not succeed")
            };
        }
        ScheduleAction::Validate => false,
        ScheduleAction::List => true,
    };
    let path = kura::schedules::file_path(&config);
    let schedules = match kura::schedules::load(&config) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            anyhow::bail!("{} has {} problem(s)", path.display(), errors.len());
        }
    };
    if !listing {
        println!(
            "{}: {} schedule(s), {} webhook(s): valid",
            path.display(),
            schedules.schedules.len(),
            schedules.notifications.webhooks.len()
        );
        return Ok(());
    }
    println!(
        "{:<24} {:<16} {:<18} {:<8} {:<28} SOURCES",
        "NAME", "CRON", "TIME ZONE", "ENABLED", "NEXT RUN"
    );
    let now = chrono::Utc::now();
    for s in &schedules.schedules {
        let next = if s.def.enabled {
            s.cron
                .next_after(s.tz, now)
                .map(|t| {
                    t.with_timezone(&s.tz)
                        .format("%Y-%m-%d %H:%M %Z")
                        .to_string()
                })
                .unwrap_or_else(|| "never".into())
        } else {
            "disabled".into()
        };
        println!(
            "{:<24} {:<16} {:<18} {:<8} {:<28} {}",
            s.def.name,
            s.cron.expression,
            s.def.timezone,
            if s.def.enabled { "yes" } else { "no" },
            next,
            s.def.sources.join(", ")
        );
    }
    Ok(())
}

/// Runs `f` with the project's metadata store open (on a small runtime of its own).
fn with_meta<F, Fut, R>(state_dir: &std::path::Path, f: F) -> anyhow::Result<R>
where
    F: FnOnce(kura::db::meta::MetaDb) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<R>>,
{
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let meta = kura::db::meta::MetaDb::open(&state_dir.join("kura.db"))?;
    let result = runtime.block_on(f(meta.clone()));
    meta.close();
    result
}

fn user_command(project: &std::path::Path, action: UserAction) -> anyhow::Result<()> {
    let config = Config::load(project)?;
    let state_dir = config.state_dir();
    match action {
        UserAction::Add {
            email,
            role,
            display_name,
        } => {
            let role = kura::auth::Role::parse(&role)
                .with_context(|| format!("{role:?} is not a role: use admin, editor or viewer"))?;
            let password = with_meta(&state_dir, |meta| async move {
                kura::auth::admin::add_user_cli(&meta, &email, role, &display_name).await
            })?;
            println!(
                "Added the user. Temporary password (shown only now; changed at first sign-in):"
            );
            println!("  {password}");
        }
        UserAction::ResetPassword { email } => {
            let password = with_meta(&state_dir, |meta| async move {
                kura::auth::admin::reset_password_cli(&meta, &email).await
            })?;
            println!("New temporary password (shown only now; changed at first sign-in):");
            println!("  {password}");
        }
        UserAction::List => {
            let users = with_meta(&state_dir, |meta| async move {
                Ok(meta.read(kura::auth::store::list_users).await?)
            })?;
            println!(
                "{:<32} {:<8} {:<12} {:<4} LAST SIGN-IN",
                "EMAIL", "ROLE", "STATUS", "2FA"
            );
            for u in users {
                println!(
                    "{:<32} {:<8} {:<12} {:<4} {}",
                    u.email,
                    u.role.as_str(),
                    u.status,
                    if u.totp_enabled { "on" } else { "off" },
                    u.last_login_at.as_deref().unwrap_or("never")
                );
            }
        }
    }
    Ok(())
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

//! The `zentrale` command: `run` the daemon (default) or `check` a config.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zentrale::config::{Config, Overrides};

/// SIP call router and ACD for public-service hotlines (115, town halls).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run(RunArgs),
    /// Validate the config and every dialplan it names, then exit.
    Check(CheckArgs),
    /// Talk to a running zentrale through its HTTP API: queues, agents,
    /// calls, pause, unpause, reload, watch.
    Ctl(CtlArgs),
}

#[derive(Args)]
struct CtlArgs {
    #[command(subcommand)]
    command: CtlCommand,
    /// zentrale's config: `http.listen` and the token of the highest role
    /// in `http.tokens` are taken from it unless --http and --token say.
    #[arg(long, short, global = true, default_value = "zentrale.yaml")]
    config: PathBuf,
    /// The HTTP API's address, e.g. 127.0.0.1:8080.
    #[arg(long, global = true, value_name = "ADDR")]
    http: Option<String>,
    /// An API token (or the environment variable ZENTRALE_TOKEN).
    #[arg(long, global = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Queues: waiting, longest wait, service level, agents.
    Queues,
    /// Agents: state, pause reason, since when.
    Agents,
    /// Live hotline calls (masked numbers): origin, queue, waiting time.
    Calls,
    /// Log an agent in.
    Login { agent: String },
    /// Log an agent out (after the current call).
    Logout { agent: String },
    /// Pause an agent.
    Pause {
        agent: String,
        /// One of `acd.pause_reasons` (default: the first).
        #[arg(long)]
        reason: Option<String>,
    },
    /// End an agent's pause.
    Unpause { agent: String },
    /// Re-read the config (needs an admin token).
    Reload,
    /// Follow the event stream, one line per event.
    Watch,
    /// Tickets (Vormerkung): id, tenant, state, due time, masked number.
    Tickets {
        /// open, in_progress, called_back, failed or closed.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Only tickets past their due time.
        #[arg(long)]
        overdue: bool,
    },
    /// One ticket with its history.
    Ticket { id: String },
}

#[derive(Args, Clone)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    clock: ClockArg,
}

#[derive(Args, Clone)]
struct ClockArg {
    /// Evaluate service hours as if the wall clock had been at this instant
    /// when zentrale started (it then runs forward); for tests, demos and
    /// `check`. RFC 3339 with an offset, e.g. 2026-11-23T10:00:00+01:00.
    #[arg(long, value_name = "INSTANT", value_parser = parse_clock)]
    clock: Option<jiff::Timestamp>,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// The main config file.
    #[arg(long, short, default_value = "zentrale.yaml")]
    config: PathBuf,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// SIP listen address for UDP and TCP, replacing the file's lists.
    #[arg(long, value_name = "ADDR")]
    sip_listen: Option<SocketAddr>,
    /// HTTP listen address (metrics, API).
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// RTP port range, e.g. 30000-30999.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_ports)]
    rtp_ports: Option<(u16, u16)>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    #[command(flatten)]
    clock: ClockArg,
}

fn parse_clock(s: &str) -> Result<jiff::Timestamp, String> {
    s.parse().map_err(|e| {
        format!("`{s}` is not an instant ({e}); write it like 2026-11-23T10:00:00+01:00")
    })
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}`: expected FIRST-LAST, e.g. 30000-30999"))?;
    let a = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not a port number"))?;
    let b = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not a port number"))?;
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(c)) => check(&c.config.config, c.clock.clock),
        Some(Command::Run(r)) => run(r),
        Some(Command::Ctl(c)) => ctl(c),
        None => run(cli.run),
    }
}

fn ctl(args: CtlArgs) -> ExitCode {
    use zentrale::ctl::{Action, Target};
    let action = match args.command {
        CtlCommand::Queues => Action::Queues,
        CtlCommand::Agents => Action::Agents,
        CtlCommand::Calls => Action::Calls,
        CtlCommand::Login { agent } => Action::Login(agent),
        CtlCommand::Logout { agent } => Action::Logout(agent),
        CtlCommand::Pause { agent, reason } => Action::Pause { agent, reason },
        CtlCommand::Unpause { agent } => Action::Unpause(agent),
        CtlCommand::Reload => Action::Reload,
        CtlCommand::Watch => Action::Watch,
        CtlCommand::Tickets {
            state,
            tenant,
            overdue,
        } => Action::Tickets {
            state,
            tenant,
            overdue,
        },
        CtlCommand::Ticket { id } => Action::Ticket(id),
    };
    let target = Target {
        config: args.config,
        http: args.http,
        token: args.token.or_else(|| {
            std::env::var("ZENTRALE_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        }),
        json: args.json,
    };
    match zentrale::ctl::run(&action, &target, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zentrale ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path, clock: Option<jiff::Timestamp>) -> ExitCode {
    match Config::load(path, &Overrides::default()) {
        Ok(config) => {
            let numbers: usize = config
                .tenants
                .iter()
                .flat_map(|t| &t.dialplan.hotlines)
                .map(|h| h.numbers.len())
                .sum();
            println!(
                "{}: ok ({} tenants, {numbers} numbers, {} agents, {} trunks)",
                path.display(),
                config.tenants.len(),
                config.agents.len(),
                config.trunks.len()
            );
            if let Some(at) = clock {
                print_openness(&config, at);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// Which hotlines are open at `at` (for `check --clock`).
fn print_openness(config: &Config, at: jiff::Timestamp) {
    use zentrale::dialplan::Openness;
    println!("at {at}:");
    for tenant in &config.tenants {
        for hotline in &tenant.dialplan.hotlines {
            let state = match hotline.schedule.as_ref().map(|s| s.is_open(at)) {
                None => "open (no hours)".to_string(),
                Some(Openness::Open) => "open".to_string(),
                Some(Openness::Closed { reason, reopens_at }) => match reopens_at {
                    Some(r) => format!("closed ({reason:?}), reopens {r}"),
                    None => format!("closed ({reason:?})"),
                },
            };
            println!("  {}/{}: {state}", tenant.id, hotline.id);
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Lines leave in batches from a thread of their own (`logging`); the
    // guard writes what is left when `run` returns.
    let (writer, _log) = zentrale::logging::start();
    if args.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .event_format(zentrale::logging::JsonLines)
            .init();
    } else {
        // Colours only for a person at a terminal, not in the journal.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(writer)
            .init();
    }
    let overrides = Overrides {
        sip_listen: args.sip_listen,
        http_listen: args.http_listen,
        rtp_ports: args.rtp_ports,
    };
    let config = match Config::load(&args.config.config, &overrides) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "zentrale did not start: fix the config and try again (`zentrale check` lists every problem)."
            );
            return ExitCode::FAILURE;
        }
    };
    // One runtime thread for the TCP connections, the HTTP API, signals and
    // reloads; the call core (daemon::driver) and the media worker have
    // threads of their own. A multi-thread runtime cost a cross-thread
    // wake-up per message (about a third of the CPU per call in the
    // signalling bench, when the core was still a task on it).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let startup = zentrale::daemon::Startup {
        config_path: args.config.config.clone(),
        overrides,
        clock: args.clock.clock,
    };
    match runtime.block_on(zentrale::daemon::run(config, startup)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zentrale stopped: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `ledger` command line: flags, dispatch, exit status. The `ledger` binary's `main` calls
//! [`main`].
//!
//! One module per subcommand (`account`, `transfer`, `history`, `journal`, `status`, `bench`);
//! `connect` turns the connection flags into a client and explains refusals; `output` holds
//! what several subcommands print. The library (`ledger_client`) does the talking: endpoints,
//! retries, the active site, TLS.
//!
//! Exit status: 0 success; 1 an error (a refusal such as a wrong role, an unreachable cluster
//! after the retry deadline, a bad flag), with a message on stderr; 2 an item was rejected or
//! not found.
//!
//! This tree names its own modules through `super::`, never `crate::`, and holds no global
//! allocator: the integration tests mount it, by path, in their own CLI binary.

mod account;
mod bench;
mod connect;
mod history;
mod journal;
mod output;
mod status;
mod transfer;

use clap::CommandFactory;
use clap::FromArgMatches;
use clap::Parser;
use clap::Subcommand;

#[derive(Parser, Debug)]
#[command(name = "ledger", version, about = "Client of the replicated bank ledger", after_help = connect::IDENTITY_HELP)]
struct Cli {
    #[command(flatten)]
    connection: connect::ConnectionArgs,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open, read, freeze, unfreeze or close accounts.
    #[command(subcommand)]
    Account(account::AccountCmd),
    /// Post a transfer (single-phase or `--pending`), or `post`/`void`/`get` one.
    Transfer(transfer::TransferCmd),
    /// An account's history rows.
    History(history::HistoryArgs),
    /// The hash-chained journal.
    #[command(subcommand)]
    Journal(journal::JournalCmd),
    /// Status of every endpoint.
    Status,
    /// Load generator: prints transfers/s and latency percentiles.
    Bench(bench::BenchArgs),
}

/// What every subcommand gets: the client, its configuration (to make more clients), and
/// whether to print JSON.
pub struct Context {
    pub client: ledger_client::LedgerClient,
    pub config: ledger_client::ClientConfig,
    pub json: bool,
}

/// A fresh id for a transfer or a bench run: `prefix-<nanos>-<pid>`.
fn unique_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{nanos:x}-{}", std::process::id())
}

async fn run(command: &Command, context: &Context) -> anyhow::Result<i32> {
    match command {
        Command::Account(cmd) => account::run(context, cmd).await,
        Command::Transfer(cmd) => transfer::run(context, cmd).await,
        Command::History(args) => history::run(context, args).await,
        Command::Journal(cmd) => journal::run(context, cmd).await,
        Command::Status => status::run(context).await,
        Command::Bench(args) => bench::run(context, args).await,
    }
}

/// Runs the `ledger` CLI with the process arguments and exits.
pub fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connection = match connect::Connection::from_args(&cli.connection, &matches) {
        Ok(connection) => connection,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        connection.check_accepted().await?;
        let context = Context {
            client: ledger_client::LedgerClient::new(connection.config.clone())?,
            config: connection.config.clone(),
            json: cli.json,
        };
        run(&cli.command, &context).await
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            connection.report(&e);
            std::process::exit(1);
        }
    }
}

//! The connection flags (`--endpoints`, `--ca`, `--cert`, `--key`, `--insecure`, each also an
//! environment variable) into a client configuration, and the message for an error that ends
//! the command: a refusal names the identity that was presented and where it came from.

use std::path::Path;
use std::path::PathBuf;

use anyhow::bail;
use clap::ArgMatches;
use clap::Args;
use clap::parser::ValueSource;
use ledger_client::ClientConfig;
use ledger_client::ClientError;
use ledger_client::tls::ProbeError;

/// Printed under `--help`.
pub const IDENTITY_HELP: &str = "\
Identity: the client certificate's organizational unit is its role (writer, reader, auditor,
operator, admin); the node refuses what the role may not do, and the command then fails at
once (exit 1) naming the role needed. A flag beats its environment variable; --cert and --key
must come from the same place (both flags, or both LEDGER_CERT and LEDGER_KEY), so that a flag
never pairs with the key of another identity left in the environment.";

#[derive(Args, Debug)]
pub struct ConnectionArgs {
    /// Client endpoints (host:port), comma-separated, of any site.
    #[arg(
        long,
        env = "LEDGER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103",
        global = true
    )]
    pub endpoints: Vec<String>,
    /// CA certificate (PEM) that signed the nodes' certificates.
    #[arg(long, env = "LEDGER_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM); its role is the certificate's organizational unit.
    #[arg(long, env = "LEDGER_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, env = "LEDGER_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// Plaintext, no client certificate (nodes started with `insecure = true`).
    #[arg(long, env = "LEDGER_INSECURE", global = true)]
    pub insecure: bool,
}

/// A client configuration and who it presents itself as.
pub struct Connection {
    pub config: ClientConfig,
    /// The identity presented, for messages: the certificate and where its path came from.
    pub identity: String,
    /// CA, certificate and key, for the handshake probe; `None` with `--insecure`.
    files: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// Where a flag's value came from, for messages.
fn origin(matches: &ArgMatches, id: &str, flag: &str, env: &str) -> String {
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => env.to_string(),
        _ => flag.to_string(),
    }
}

impl Connection {
    pub fn from_args(args: &ConnectionArgs, matches: &ArgMatches) -> anyhow::Result<Connection> {
        let mut config = ClientConfig::insecure(args.endpoints.clone());
        let mut files = None;
        let identity = match (&args.ca, &args.cert, &args.key) {
            (Some(ca), Some(cert), Some(key)) => {
                if matches.value_source("cert") != matches.value_source("key") {
                    bail!(
                        "the certificate comes from {} but the key from {}: a certificate and its key go together \
                         (pass --cert and --key, or neither to use LEDGER_CERT and LEDGER_KEY)",
                        origin(matches, "cert", "--cert", "LEDGER_CERT"),
                        origin(matches, "key", "--key", "LEDGER_KEY")
                    );
                }
                config.tls = Some(ledger_client::tls::client_tls(ca, cert, key)?);
                files = Some((ca.clone(), cert.clone(), key.clone()));
                describe(cert, &origin(matches, "cert", "--cert", "LEDGER_CERT"))
            }
            (None, None, None) if args.insecure => {
                eprintln!("warning: --insecure: plaintext, no client certificate");
                "no certificate (--insecure)".to_string()
            }
            (None, None, None) => bail!("pass --ca, --cert and --key (or --insecure for a plaintext cluster)"),
            _ => bail!("--ca, --cert and --key go together (flags or LEDGER_CA, LEDGER_CERT, LEDGER_KEY)"),
        };
        Ok(Connection { config, identity, files })
    }

    /// Fails at once if the nodes refuse our certificate at the TLS handshake, which the calls
    /// themselves would only see as broken connections (see `ledger_client::tls`).
    pub async fn check_accepted(&self) -> anyhow::Result<()> {
        if let Some((ca, cert, key)) = &self.files {
            ledger_client::tls::check_accepted(&self.config.endpoints, ca, cert, key).await?;
        }
        Ok(())
    }

    /// Prints the error that ends the command; for a refusal of the identity, which one.
    pub fn report(&self, error: &anyhow::Error) {
        eprintln!("error: {error:#}");
        let client_error = error.chain().find_map(|e| e.downcast_ref::<ClientError>());
        let tls_refused = error.chain().any(|e| e.downcast_ref::<ProbeError>().is_some());
        match client_error {
            Some(e) if e.is_identity_refusal() => {
                eprintln!("note: presented {}; a refusal is final and was not retried", self.identity);
            }
            Some(e) if e.is_final() => eprintln!("note: a refusal is final and was not retried"),
            _ if tls_refused => eprintln!(
                "note: presented {}; it must be signed by the CA that signed the nodes' certificates, and \
                 --ca must be that CA",
                self.identity
            ),
            _ => {}
        }
    }
}

fn describe(cert: &Path, origin: &str) -> String {
    format!("the certificate {} (from {origin})", cert.display())
}

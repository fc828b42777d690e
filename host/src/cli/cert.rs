//! `baton cert issue --user U`: a client certificate for mutual TLS, signed
//! by the CA that `tls = "self-signed"` generates into `<data>/tls`.

use super::ServeArgs;
use crate::server::tls::{self, CLIENTS_DIR, TLS_DIR};
use std::path::PathBuf;

/// `baton cert …`.
#[derive(Debug, clap::Args)]
pub struct CertArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    target: ServeArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Sign a client certificate whose common name is the user (for
    /// `curl --cert/--key`); a listener with `client_ca = "self-signed"`
    /// accepts it and authenticates the request as that user.
    Issue {
        /// The user the certificate authenticates as.
        #[arg(long)]
        user: String,
        /// Days the certificate stays valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Where to write `<user>.pem` and `<user>-key.pem`; default: `<data>/tls/clients`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `baton cert …`.
pub fn run(args: CertArgs) -> anyhow::Result<()> {
    let (_, data_dir) = args.target.resolve()?;
    match args.action {
        Action::Issue { user, days, out } => {
            let out = out.unwrap_or_else(|| data_dir.join(TLS_DIR).join(CLIENTS_DIR));
            let issued = tls::issue_client_cert(&data_dir, &user, days, &out)?;
            println!("cert: {}", issued.cert.display());
            println!("key: {}", issued.key.display());
            println!("ca: {}", issued.ca.display());
            eprintln!(
                "issued a client certificate for `{user}`, valid {days} days; e.g. curl --cacert {} --cert {} --key {} …",
                issued.ca.display(),
                issued.cert.display(),
                issued.key.display()
            );
        }
    }
    Ok(())
}

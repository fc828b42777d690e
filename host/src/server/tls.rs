//! TLS for listeners with rustls (ring provider): a self-signed CA and server
//! certificate generated into `<data>/tls` on first start and reused after,
//! or PEM files; optionally required client certificates (mTLS).

use crate::manifest::{ClientCa, Manifest, TlsSource, TlsSpec};
use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The folder of generated certificates inside the data directory.
pub const TLS_DIR: &str = "tls";
/// The generated CA certificate (give it to clients instead of `-k`).
pub const CA_CERT: &str = "ca.pem";
/// The generated CA's private key (mode 0600).
pub const CA_KEY: &str = "ca-key.pem";
/// Where `baton cert issue` writes client certificates, inside [`TLS_DIR`].
pub const CLIENTS_DIR: &str = "clients";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";

/// The rustls configuration of a listener at `addr` with `spec`.
pub fn server_config(
    spec: &TlsSpec,
    manifest: &Manifest,
    data_dir: &Path,
    addr: SocketAddr,
) -> anyhow::Result<Arc<ServerConfig>> {
    let (cert_path, key_path) = match &spec.source {
        TlsSource::SelfSigned => self_signed(data_dir, addr)?,
        TlsSource::Files { cert, key } => (manifest.resolve(cert), manifest.resolve(key)),
    };
    let chain = read_certs(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading the TLS private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &spec.client_ca {
        Some(ca) => {
            let ca = match ca {
                ClientCa::Generated => data_dir.join(TLS_DIR).join(CA_CERT),
                ClientCa::File(path) => manifest.resolve(path),
            };
            let mut roots = RootCertStore::empty();
            for cert in read_certs(&ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("building the client verifier from {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "{} and {} do not form a usable certificate and key",
            cert_path.display(),
            key_path.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// The parameters of the generated CA. Its certificate is made from them
/// once; afterwards they name it as the issuer of the certificates it signs
/// (the same subject, so chains verify).
fn ca_params() -> anyhow::Result<rcgen::CertificateParams> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Baton self-signed CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca)
}

/// The generated CA in `dir` as an issuer, created (certificate and 0600
/// key) when the folder has none.
fn load_or_create_ca(dir: &Path) -> anyhow::Result<rcgen::Issuer<'static, rcgen::KeyPair>> {
    use rcgen::{Issuer, KeyPair};
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    if key.exists() {
        let pem = std::fs::read_to_string(&key)
            .with_context(|| format!("reading the CA key {}", key.display()))?;
        let key_pair = KeyPair::from_pem(&pem)
            .with_context(|| format!("{}: not a usable private key", key.display()))?;
        return Ok(Issuer::new(ca_params()?, key_pair));
    }
    if cert.exists() {
        bail!(
            "{} has a CA certificate but not its key {CA_KEY}; delete the folder to generate both again",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_pair = KeyPair::generate()?;
    let params = ca_params()?;
    let ca_cert = params.self_signed(&key_pair)?;
    crate::auth::write_private_file(&key, key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, ca_cert.pem())?;
    Ok(Issuer::new(params, key_pair))
}

/// Where a shared store keeps the generated CA: namespace, bucket, key
/// (the certificate and key PEMs as one JSON value, written once).
const SHARED_CA: (&str, &str, &str) = ("baton:secrets", "tls", "ca");

/// The generated CA's certificate and key.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct CaPems {
    cert: String,
    key: String,
}

/// With a store that several machines share: makes `<data>/tls` hold the
/// one generated CA kept in the store, created by whichever server gets
/// there first (compare-and-swap), so that clients trust one CA whichever
/// machine answers. A server certificate signed by another CA is dropped,
/// to be signed again by the shared one.
pub async fn share_generated_ca(
    store: &dyn crate::store::KvStore,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let (ns, bucket, key) = SHARED_CA;
    let dir = data_dir.join(TLS_DIR);
    let local = || CaPems {
        cert: std::fs::read_to_string(dir.join(CA_CERT)).unwrap_or_default(),
        key: std::fs::read_to_string(dir.join(CA_KEY)).unwrap_or_default(),
    };
    let stored = crate::store::create_once(store, ns, bucket, key, || {
        // None yet: this machine's (generated now if it has none) is shared.
        load_or_create_ca(&dir)?;
        anyhow::Ok(serde_json::to_vec(&local()).expect("serialises"))
    })
    .await?;
    let shared: CaPems =
        serde_json::from_slice(&stored).context("the shared CA in the store does not decode")?;
    if local() != shared {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::auth::write_private_file(&dir.join(CA_KEY), shared.key.as_bytes())?;
        std::fs::write(dir.join(CA_CERT), &shared.cert)?;
        for stale in [SERVER_CERT, SERVER_KEY] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        tracing::info!(ca = %dir.join(CA_CERT).display(), "took the generated CA from the shared store");
    }
    Ok(())
}

/// The generated server certificate and key, created (with the CA, if
/// needed) on first use.
fn self_signed(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<(PathBuf, PathBuf)> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let dir = data_dir.join(TLS_DIR);
    let (cert, key) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let issuer = load_or_create_ca(&dir)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !addr.ip().is_unspecified() && !names.contains(&addr.ip().to_string()) {
        names.push(addr.ip().to_string());
    }
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names)?;
    server.distinguished_name.push(DnType::CommonName, "baton");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;
    std::fs::write(&cert, server_cert.pem())?;
    crate::auth::write_private_file(&key, server_key.serialize_pem().as_bytes())?;
    tracing::info!(
        ca = %dir.join(CA_CERT).display(),
        "generated a self-signed CA and server certificate; clients trust the CA file or use `curl -k`"
    );
    Ok((cert, key))
}

/// A client certificate issued by the generated CA.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate (PEM), for `curl --cert`.
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600), for `curl --key`.
    pub key: PathBuf,
    /// The CA that signed it (PEM), for `curl --cacert`.
    pub ca: PathBuf,
}

/// Signs a client certificate whose common name is `user` with the CA
/// generated into `<data>/tls` (created if there is none yet), valid for
/// `days`, and writes it with its key into `out` as `<user>.pem` and
/// `<user>-key.pem`. A mutual-TLS listener with `client_ca = "self-signed"`
/// accepts it and authenticates the request as `user`.
pub fn issue_client_cert(
    data_dir: &Path,
    user: &str,
    days: u32,
    out: &Path,
) -> anyhow::Result<IssuedCert> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let file_safe = !user.is_empty()
        && !user.starts_with('.')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !file_safe {
        bail!(
            "`{user}` is not a user name a certificate can be issued for (letters, digits, `.`, `_`, `@`, `-`)"
        );
    }
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let dir = data_dir.join(TLS_DIR);
    let issuer = load_or_create_ca(&dir)?;
    let now = time::OffsetDateTime::now_utc();
    let key_pair = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(days));
    let cert = params.signed_by(&key_pair, &issuer)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let issued = IssuedCert {
        cert: out.join(format!("{user}.pem")),
        key: out.join(format!("{user}-key.pem")),
        ca: dir.join(CA_CERT),
    };
    crate::auth::write_private_file(&issued.key, key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&issued.cert, cert.pem())
        .with_context(|| format!("writing {}", issued.cert.display()))?;
    Ok(issued)
}

/// The common name of a verified client certificate.
pub fn peer_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_name_the_user_and_share_the_server_ca() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let issued = issue_client_cert(dir.path(), "ann", 30, &out).unwrap();
        assert_eq!(issued.ca, dir.path().join(TLS_DIR).join(CA_CERT));
        let cert = read_certs(&issued.cert).unwrap();
        assert_eq!(peer_common_name(&cert[0]).as_deref(), Some("ann"));
        // The server certificate generated later is signed by the same CA.
        let ca_before = std::fs::read(&issued.ca).unwrap();
        self_signed(dir.path(), "127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(std::fs::read(&issued.ca).unwrap(), ca_before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&issued.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn unusable_names_and_lifetimes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "../x", ".hidden", "a b", "a/b"] {
            let e = issue_client_cert(dir.path(), bad, 30, dir.path()).unwrap_err();
            assert!(e.to_string().contains("not a user name"), "{bad:?}: {e}");
        }
        let e = issue_client_cert(dir.path(), "ann", 0, dir.path()).unwrap_err();
        assert!(e.to_string().contains("--days"), "{e}");
    }
}

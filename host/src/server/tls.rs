//! TLS for listeners with rustls (ring provider): a self-signed CA and server
//! certificate generated into `<data>/tls` on first start and reused after,
//! or PEM files; optionally required client certificates (mTLS).

use crate::manifest::{Manifest, TlsSource, TlsSpec};
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
const CA_KEY: &str = "ca-key.pem";
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
            let ca = manifest.resolve(ca);
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

/// The generated server certificate and key, created with their CA on first use.
fn self_signed(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<(PathBuf, PathBuf)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let dir = data_dir.join(TLS_DIR);
    let (cert, key) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    if dir.join(CA_CERT).exists() {
        bail!(
            "{} has a CA but no server certificate; delete the folder to generate both again",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Baton self-signed CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;

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
    let issuer = Issuer::new(ca, ca_key);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    std::fs::write(dir.join(CA_CERT), ca_cert.pem())?;
    crate::auth::write_private_file(&dir.join(CA_KEY), issuer.key().serialize_pem().as_bytes())?;
    std::fs::write(&cert, server_cert.pem())?;
    crate::auth::write_private_file(&key, server_key.serialize_pem().as_bytes())?;
    tracing::info!(
        ca = %dir.join(CA_CERT).display(),
        "generated a self-signed CA and server certificate; clients trust the CA file or use `curl -k`"
    );
    Ok((cert, key))
}

/// The common name of a verified client certificate.
pub fn peer_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

//! TLS for the tools' own PostgreSQL connections, with libpq's `sslmode` meanings, so that
//! stg's catalog connection and the `pg_dump`/`psql` it spawns are protected alike.
//!
//! | mode | encryption | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked; checked against the root certificates as in `verify-ca` when the root file exists (libpq does the same) |
//! | `verify-ca` | always | signed by a trusted root; any host name |
//! | `verify-full` | always | signed by a trusted root and issued for the host connected to |
//!
//! Roots come from `PGSSLROOTCERT` (default `~/.postgresql/root.crt`), or from the system's
//! store when it is `system`, which (as in libpq 16) makes `verify-full` the default and a
//! weaker mode an error. A client certificate is sent when `PGSSLCERT` (default
//! `~/.postgresql/postgresql.crt`) exists, with the key in `PGSSLKEY` (default
//! `~/.postgresql/postgresql.key`), which must not be readable by group or others. Unix
//! sockets never use TLS. Differences from libpq (which uses OpenSSL):
//! - `allow` behaves as `prefer` (tries TLS first), and a failed handshake in `prefer` is
//!   not retried without TLS;
//! - in `prefer` and `allow` the certificate is not checked even when a root file exists
//!   (libpq checks the chain then);
//! - certificate revocation lists (`PGSSLCRL`) are not read;
//! - certificates are checked by webpki, which is stricter than OpenSSL: the host name must
//!   be in the subjectAltName (no fallback to the CN), a certificate marked as a CA
//!   (`CA:TRUE`, as a self-signed server certificate often is) is refused as a server
//!   certificate in `verify-*` modes and in `require` with a root file, X.509 v1 certificates
//!   are refused, and RSA keys under 2048 bits are refused in every mode.
//!
//! The children (`pg_dump`, `psql`) use libpq's own rules with the same settings.
//! See <https://www.postgresql.org/docs/current/libpq-ssl.html>.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (stg tries TLS first, as with prefer).
    Allow,
    /// TLS when the server offers it, without checking the certificate.
    #[default]
    Prefer,
    /// TLS always; the certificate is checked only when a root certificate file exists.
    Require,
    /// TLS always; the certificate must be signed by a trusted root.
    VerifyCa,
    /// TLS always; the certificate must be signed by a trusted root and name the host.
    VerifyFull,
}

impl SslMode {
    /// The name libpq uses, for `PGSSLMODE`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True for the modes that refuse an unencrypted connection.
    #[must_use]
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// The files TLS reads, resolved from the environment the way libpq does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Trusted roots: a PEM file, or `None` for the system's store (`PGSSLROOTCERT=system`).
    pub root: Option<PathBuf>,
    /// The client certificate (sent only when it exists).
    pub cert: PathBuf,
    /// The client certificate's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`, defaulting to files under
    /// `~/.postgresql`.
    #[must_use]
    pub fn from_env() -> TlsFiles {
        let dir = crate::conn::home_dir()
            .unwrap_or_default()
            .join(".postgresql");
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| dir.join(default), PathBuf::from)
        };
        let root = var("PGSSLROOTCERT", "root.crt");
        TlsFiles {
            root: (root != Path::new("system")).then_some(root),
            cert: var("PGSSLCERT", "postgresql.crt"),
            key: var("PGSSLKEY", "postgresql.key"),
        }
    }

    /// True when the roots are the system's store.
    #[must_use]
    pub fn system_roots(&self) -> bool {
        self.root.is_none()
    }
}

/// The mode to use: the one asked for, or libpq's default (`prefer`, or `verify-full` with
/// the system's roots). A weaker mode with the system's roots is refused, as libpq does.
pub fn effective_mode(asked: Option<SslMode>, files: &TlsFiles) -> anyhow::Result<SslMode> {
    match (asked, files.system_roots()) {
        (None, true) => Ok(SslMode::VerifyFull),
        (None, false) => Ok(SslMode::Prefer),
        (Some(mode), true) if mode != SslMode::VerifyFull => bail!(
            "sslmode \"{}\" is weaker than the system's root certificates (PGSSLROOTCERT=system) allow; use verify-full",
            mode.as_str()
        ),
        (Some(mode), _) => Ok(mode),
    }
}

/// Adds what was checked, and a hint for the usual causes, to a refused server certificate.
#[must_use]
pub fn explain(err: anyhow::Error, mode: SslMode, files: &TlsFiles) -> anyhow::Error {
    let text = format!("{err:#}");
    if !text.contains("peer certificate") {
        return err;
    }
    let roots = files.root.as_ref().map_or_else(
        || "the system's store".to_owned(),
        |p| format!("\"{}\"", p.display()),
    );
    let hint = if text.contains("CaUsedAsEndEntity") {
        "; the server's certificate is marked as a CA (CA:TRUE, as a self-signed one often is): \
         give the server a certificate signed by a CA, or use sslmode require without a root file"
    } else if text.contains("UnknownIssuer") {
        "; the server's certificate is not signed by any of these roots"
    } else {
        ""
    };
    err.context(format!(
        "sslmode {}, root certificates from {roots}{hint}",
        mode.as_str()
    ))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every PEM certificate in a file; `what` names the file in the error.
fn read_certificates(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| anyhow::anyhow!("could not read {what} file \"{}\": {e}", path.display()))
}

fn read_roots(files: &TlsFiles) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match &files.root {
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!(
                    "PGSSLROOTCERT=system, but no root certificates were found in the system's store{}",
                    found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
            }
        }
        Some(path) => {
            let certs = read_certificates(path, "root certificate")?;
            if certs.is_empty() {
                bail!(
                    "root certificate file \"{}\" holds no PEM certificate",
                    path.display()
                );
            }
            for cert in certs {
                store
                    .add(cert)
                    .with_context(|| format!("root certificate file \"{}\"", path.display()))?;
            }
        }
    }
    Ok(store)
}

/// The key file must be private: no access for others, and none for the group unless it
/// belongs to root (libpq's rule, which lets a root-owned key be shared with a group).
fn check_key_permissions(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path).map_err(|e| {
        anyhow::anyhow!(
            "certificate present, but not private key file \"{}\": {e}",
            path.display()
        )
    })?;
    let mode = meta.permissions().mode();
    let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if mode & 0o777 & !allowed != 0 {
        bail!(
            "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            path.display()
        );
    }
    Ok(())
}

/// The rustls configuration for a connection in `mode` (which must not be `disable`).
pub fn client_config(mode: SslMode, files: &TlsFiles) -> anyhow::Result<ClientConfig> {
    let provider = provider();
    let root_exists = files.root.as_deref().is_none_or(Path::exists);
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull if !root_exists => {
            let path = files.root.as_deref().unwrap_or(Path::new("system"));
            bail!(
                "root certificate file \"{}\" does not exist; either provide the file (PGSSLROOTCERT), use the system's trusted roots with PGSSLROOTCERT=system, or change sslmode to disable server certificate verification",
                path.display()
            );
        }
        SslMode::VerifyFull => WebPkiServerVerifier::builder_with_provider(
            Arc::new(read_roots(files)?),
            provider.clone(),
        )
        .build()
        .context("could not set up certificate verification")?,
        SslMode::VerifyCa | SslMode::Require if root_exists => Arc::new(LibpqVerifier {
            roots: Some(read_roots(files)?),
            provider: provider.clone(),
        }),
        _ => Arc::new(LibpqVerifier {
            roots: None,
            provider: provider.clone(),
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    if !files.cert.exists() {
        return Ok(builder.with_no_client_auth());
    }
    check_key_permissions(&files.key)?;
    let chain = read_certificates(&files.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        anyhow::anyhow!(
            "could not load private key file \"{}\": {e}",
            files.key.display()
        )
    })?;
    builder.with_client_auth_cert(chain, key).with_context(|| {
        format!(
            "certificate \"{}\" does not match private key file \"{}\"",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// The server-certificate check of every mode but `verify-full` (which is rustls's own
/// `WebPkiServerVerifier`). With `roots` (`verify-ca`, and `require` when the root file
/// exists) the chain must lead to a trusted root, the host name not compared; without
/// (`prefer`, `allow`, `require` without a root file) the certificate is not checked,
/// which stops passive listeners only. Either way the handshake signature is checked: the
/// server holds the key of the certificate it shows.
#[derive(Debug)]
struct LibpqVerifier {
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: Option<&str>) -> TlsFiles {
        TlsFiles {
            root: root.map(PathBuf::from),
            cert: PathBuf::from("/nonexistent/postgresql.crt"),
            key: PathBuf::from("/nonexistent/postgresql.key"),
        }
    }

    #[test]
    fn system_roots_default_to_verify_full_and_refuse_weaker_modes() {
        let system = files(None);
        assert_eq!(effective_mode(None, &system).unwrap(), SslMode::VerifyFull);
        let err = effective_mode(Some(SslMode::Require), &system).unwrap_err();
        assert!(err.to_string().contains("verify-full"), "{err}");
        assert!(effective_mode(Some(SslMode::Disable), &system).is_err());
        let file = files(Some("/etc/stg/root.crt"));
        assert_eq!(effective_mode(None, &file).unwrap(), SslMode::Prefer);
        assert_eq!(
            effective_mode(Some(SslMode::VerifyCa), &file).unwrap(),
            SslMode::VerifyCa
        );
    }

    #[test]
    fn verifying_modes_need_the_root_file_and_name_it() {
        let missing = files(Some("/nonexistent/root.crt"));
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let err = client_config(mode, &missing).unwrap_err().to_string();
            assert!(
                err.contains("\"/nonexistent/root.crt\" does not exist"),
                "{err}"
            );
        }
        // Without the file, require and prefer encrypt without checking.
        for mode in [SslMode::Require, SslMode::Prefer, SslMode::Allow] {
            client_config(mode, &missing).unwrap();
        }
    }

    #[test]
    fn a_root_file_without_certificates_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.crt");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = client_config(SslMode::VerifyFull, &files(path.to_str()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
    }
}

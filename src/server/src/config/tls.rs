//! `[ingress_tls]`: TLS on the ingress listener, so that the proxy reaches
//! the checks and the feed over an encrypted, authenticated connection; with
//! `client_ca`, only a proxy holding a certificate from that CA gets in
//! (mutual TLS), whatever the network lets through.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

use super::{invalid, ConfigError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngressTls {
    /// The listener's certificate chain (PEM), leaf first; relative to the
    /// configuration file's folder.
    certificate: PathBuf,
    /// Its private key (PEM: PKCS #8, PKCS #1 or SEC 1).
    private_key: PathBuf,
    /// CA certificates (PEM) of the proxies allowed in: when set, a client
    /// must present a certificate one of them signed. Default: none (any
    /// client that reaches the port may connect).
    client_ca: Option<PathBuf>,
}

/// The ingress listener's TLS, ready to accept with.
#[derive(Clone)]
pub struct IngressTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client_auth: bool,
}

impl std::fmt::Debug for IngressTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("IngressTls")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certificates(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(field, format!("cannot read {}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(invalid(
            field,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certificates)
}

impl RawIngressTls {
    pub(super) fn validate(self, base: &Path) -> Result<IngressTls, ConfigError> {
        let chain = certificates("ingress_tls.certificate", &base.join(&self.certificate))?;
        let key_path = base.join(&self.private_key);
        // The parser's message only: it never quotes the file.
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
            invalid(
                "ingress_tls.private_key",
                format!("cannot read a private key from {}: {e}", key_path.display()),
            )
        })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("ingress_tls", e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates("ingress_tls.client_ca", &base.join(ca))? {
                    roots.add(certificate).map_err(|e| {
                        invalid(
                            "ingress_tls.client_ca",
                            format!("not a CA certificate: {e}"),
                        )
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| invalid("ingress_tls.client_ca", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder.with_single_cert(chain, key).map_err(|e| {
            invalid(
                "ingress_tls.private_key",
                format!("does not fit the certificate: {e}"),
            )
        })?;
        // The listeners speak HTTP/1.1 only.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(IngressTls {
            server: Arc::new(server),
            client_auth: self.client_ca.is_some(),
        })
    }
}

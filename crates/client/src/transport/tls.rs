//! TLS with rustls: trust anchors from `--cafile`, `--capath` or the OS,
//! optional client certificate, and `--insecure` (skip only the host name
//! check, as mosquitto does; the chain is still verified).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{TlsOptions, TlsVersion};
use crate::error::ClientError;

/// Builds the rustls client configuration for `opts`.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    if let Some(file) = &opts.cafile {
        add_pem_certs(&mut roots, file)?;
    }
    if let Some(dir) = &opts.capath {
        let entries = std::fs::read_dir(dir).map_err(|e| file_error(dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| file_error(dir, e))?.path();
            if path.is_file() {
                // A CA directory also holds hash links and CRLs; skip what is
                // not a certificate instead of failing on it.
                let _ = add_pem_certs(&mut roots, &path);
            }
        }
    }
    if opts.use_os_certs || (opts.cafile.is_none() && opts.capath.is_none()) {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // One unparsable system certificate must not prevent the others.
            let _ = roots.add(cert);
        }
    }
    if roots.is_empty() {
        return Err(ClientError::Tls("no trusted CA certificate loaded".into()));
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.version {
        None => rustls::DEFAULT_VERSIONS,
        Some(TlsVersion::V1_2) => &[&rustls::version::TLS12],
        Some(TlsVersion::V1_3) => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let roots = Arc::new(roots);
    let builder = if opts.insecure {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName { inner, provider }))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", cert.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Tls(format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

fn add_pem_certs(roots: &mut RootCertStore, file: &Path) -> Result<(), ClientError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| ClientError::Tls(format!("{}: {e}", file.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Tls(format!("{}: {e}", file.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Tls(format!(
            "{}: no PEM certificate found",
            file.display()
        )));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(format!("{}: {e}", file.display())))?;
    }
    Ok(())
}

fn file_error(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::File {
        path: path.display().to_string(),
        source,
    }
}

/// Runs the TLS handshake over `tcp`, naming `host` (SNI and verification).
pub async fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, ClientError> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| ClientError::Tls(format!("invalid server name '{host}': {e}")))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ClientError::Connect(format!("TLS handshake failed: {e}")))
}

/// `--insecure`: the WebPKI verifier, except that a certificate issued for
/// another name is accepted. Expiry, chain and signatures are still checked.
#[derive(Debug)]
struct AnyName {
    inner: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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

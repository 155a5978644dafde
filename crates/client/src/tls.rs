//! Which servers the client trusts. HTTPS and WSS go through rustls with the ring provider. A
//! server's certificate is accepted when it chains to a standard web root (Mozilla's, as shipped
//! by `webpki-roots`) or to an extra CA the app supplies as PEM: a county's private CA, or the
//! county server's self-signed certificate. One [`rustls::ClientConfig`] serves both the HTTP
//! requests and the live WebSocket, so the two never disagree about trust.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::ClientError;

/// The server certificates a client accepts: the standard web roots, plus the certificates of
/// an optional PEM text (a county's own CA).
///
/// ```
/// use doorstep_client::{ClientError, Trust};
/// assert_eq!(Trust::web_roots().ca_pem(), None);
/// assert!(matches!(Trust::with_ca_pem("not a certificate"), Err(ClientError::InvalidCaCertificate(_))));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Trust {
    ca_pem: Option<String>,
    extra: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Only the standard web roots: for a server whose certificate a public CA issued.
    pub fn web_roots() -> Self {
        Self::default()
    }

    /// The standard web roots plus every certificate in `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks; anything else in the text is ignored). The
    /// certificates are checked here, so a bad one is refused when the app hands it over
    /// ([`ClientError::InvalidCaCertificate`]), not at the first connection.
    pub fn with_ca_pem(pem: &str) -> Result<Self, ClientError> {
        let extra = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::InvalidCaCertificate(format!("the PEM text is damaged: {e}")))?;
        if extra.is_empty() {
            return Err(ClientError::InvalidCaCertificate(
                "the text holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let trust = Self { ca_pem: Some(pem.to_owned()), extra };
        trust.roots()?;
        Ok(trust)
    }

    /// [`Trust::with_ca_pem`] when there is a PEM text, [`Trust::web_roots`] when there is none.
    pub fn from_optional_pem(pem: Option<&str>) -> Result<Self, ClientError> {
        pem.map_or_else(|| Ok(Self::web_roots()), Self::with_ca_pem)
    }

    /// The PEM text given to [`Trust::with_ca_pem`], if any: what an enrolment remembers.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    fn roots(&self) -> Result<RootCertStore, ClientError> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for cert in &self.extra {
            roots.add(cert.clone()).map_err(|e| {
                ClientError::InvalidCaCertificate(format!("not a certificate that can be trusted: {e}"))
            })?;
        }
        Ok(roots)
    }

    /// The rustls configuration for these roots, with the ring provider named explicitly (so
    /// it does not depend on a process-wide default provider).
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::TlsSetup(e.to_string()))?
                .with_root_certificates(self.roots()?)
                .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// If `error`, or an error that caused it, is rustls refusing the server's certificate: why,
/// in a sentence. reqwest and tungstenite wrap the rustls error in `io::Error`s (reqwest in two),
/// whose `source()` skips the error they wrap, so the walk opens each `io::Error` itself.
pub(crate) fn untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(reason)) = e.downcast_ref::<rustls::Error>() {
            let hint = match reason {
                rustls::CertificateError::UnknownIssuer => {
                    " (no trusted CA issued it: give the county's CA certificate)"
                }
                _ => "",
            };
            return Some(format!("{reason}{hint}"));
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_a_certificate_is_refused() {
        for text in [
            "",
            "hello",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        ] {
            let Err(ClientError::InvalidCaCertificate(why)) = Trust::with_ca_pem(text) else {
                panic!("{text:?} was accepted");
            };
            assert!(why.contains("no certificate"), "{why}");
        }
    }

    #[test]
    fn a_damaged_pem_is_refused() {
        let damaged = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        let Err(ClientError::InvalidCaCertificate(why)) = Trust::with_ca_pem(damaged) else {
            panic!("a damaged PEM was accepted");
        };
        assert!(why.contains("damaged"), "{why}");
    }

    #[test]
    fn a_pem_whose_contents_are_not_a_certificate_is_refused() {
        // Valid PEM and base64, but the DER inside is not an X.509 certificate.
        let garbage = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        let Err(ClientError::InvalidCaCertificate(why)) = Trust::with_ca_pem(garbage) else {
            panic!("a non-certificate was accepted");
        };
        assert!(why.contains("can be trusted"), "{why}");
    }

    #[test]
    fn the_web_roots_build_a_configuration() {
        let trust = Trust::from_optional_pem(None).expect("no PEM is the web roots");
        assert_eq!(trust.ca_pem(), None);
        assert!(trust.client_config().is_ok());
    }

    #[test]
    fn an_unknown_issuer_is_found_inside_nested_io_errors() {
        let refusal = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, refusal);
        // As reqwest hands it over: an io::Error around the one tokio-rustls made.
        let wrapped = std::io::Error::other(wrapped);
        let why = untrusted_certificate(&wrapped).expect("found");
        assert!(why.contains("CA certificate"), "{why}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            untrusted_certificate(&refused),
            None,
            "a refused connection is not a certificate problem"
        );
    }
}

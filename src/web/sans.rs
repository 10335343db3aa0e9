//! `client_allowed_sans`: after the CA has verified a client certificate, the handshake goes on
//! only if the certificate names one of the allowed DNS names or IP addresses in its Subject
//! Alternative Names (exporter-toolkit: "could not find allowed SANs in client cert").

use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

#[derive(Debug)]
pub struct AllowedSans {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub allowed: Vec<ServerName<'static>>,
}

/// An allowed SAN as rustls can compare it: a DNS name or an IP address (email and URI SANs,
/// which the toolkit also compares, are refused naming them).
pub fn allowed_name(text: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(text.to_string()).map_err(|_| {
        format!("{text:?} is refused: only DNS names and IP addresses can be matched (no email or URI SANs)")
    })
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        if self.allowed.iter().any(|name| cert.verify_is_valid_for_subject_name(name).is_ok()) {
            Ok(verified)
        } else {
            tracing::debug!("client certificate refused: none of client_allowed_sans in its SANs");
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

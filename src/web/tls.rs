//! `tls_server_config` of the web configuration, mapped onto rustls: versions, TLS 1.2 cipher
//! suites and key-exchange groups by the Go names exporter-toolkit takes; a name rustls cannot
//! do is refused, naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::aws_lc_rs::{cipher_suite, kx_group};
use tokio_rustls::rustls::crypto::{CryptoProvider, SupportedKxGroup};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::sans::{allowed_name, AllowedSans};
use crate::config::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    /// `NoClientCert` (default), `RequireAndVerifyClientCert` or `VerifyClientCertIfGiven`
    /// (both need client_ca_file); `RequestClientCert` and `RequireAnyClientCert` are refused.
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    /// `TLS12` or `TLS13` (rustls has no older version); default TLS12 … TLS13, as the toolkit.
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    /// TLS 1.2 suites by Go's names (TLS 1.3's are not configurable, in Go either).
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    /// Key exchange groups by Go's names, in preference order.
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    /// DNS names or IP addresses; a verified client certificate must name one in its SANs.
    #[serde(default)]
    client_allowed_sans: Option<Vec<String>>,
    /// Default true (the toolkit's): the server's order of cipher suites wins.
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
}

pub(super) fn tls_config(
    raw: RawTls,
    base: &Path,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let resolve = |p: &Path| if p.is_relative() { base.join(p) } else { p.to_path_buf() };
    let cert_file = resolve(&raw.cert_file);
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert_file).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map_err(|e| {
            invalid(
                "tls_server_config.cert_file",
                format!("cannot read certificates from {}: {e}", cert_file.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid("tls_server_config.cert_file", format!("{} holds no certificate", cert_file.display())));
    }
    let key_file = resolve(&raw.key_file);
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
        invalid("tls_server_config.key_file", format!("cannot read a private key from {}: {e}", key_file.display()))
    })?;
    let (provider, versions) = provider_and_versions(&raw, invalid)?;
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| invalid("tls_server_config", e.to_string()))?;
    // exporter-toolkit's check, in its words: a CA without a policy would leave mTLS off.
    if raw.client_ca_file.is_some() && raw.client_auth_type.is_none() {
        return Err(invalid(
            "tls_server_config.client_ca_file",
            "Client CA's have been configured without a Client Auth Policy (set tls_server_config.client_auth_type, \
             e.g. RequireAndVerifyClientCert)"
                .into(),
        ));
    }
    let verified = |allow_unauthenticated: bool, name: &str| {
        let ca_path = raw.client_ca_file.as_deref().map(resolve).ok_or_else(|| {
            invalid("tls_server_config.client_ca_file", format!("is required with client_auth_type {name}"))
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in
            CertificateDer::pem_file_iter(&ca_path).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map_err(|e| {
                invalid("tls_server_config.client_ca_file", format!("cannot read {}: {e}", ca_path.display()))
            })?
        {
            roots.add(ca).map_err(|e| invalid("tls_server_config.client_ca_file", e.to_string()))?;
        }
        let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let builder = if allow_unauthenticated { builder.allow_unauthenticated() } else { builder };
        let verifier = builder.build().map_err(|e| invalid("tls_server_config.client_ca_file", e.to_string()))?;
        Ok::<_, ConfigError>(match &raw.client_allowed_sans {
            None => verifier,
            Some(names) => {
                let key = "tls_server_config.client_allowed_sans";
                let allowed: Vec<_> =
                    names.iter().map(|n| allowed_name(n)).collect::<Result<_, _>>().map_err(|e| invalid(key, e))?;
                Arc::new(AllowedSans { inner: verifier, allowed })
            }
        })
    };
    if raw.client_allowed_sans.is_some()
        && !matches!(raw.client_auth_type.as_deref(), Some("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"))
    {
        return Err(invalid(
            "tls_server_config.client_allowed_sans",
            "needs client_auth_type RequireAndVerifyClientCert or VerifyClientCertIfGiven (there is no client certificate to check otherwise)".into(),
        ));
    }
    // Every value exporter-toolkit knows (Go's tls.ClientAuthType names), handled or refused by name.
    let builder = match raw.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => builder.with_no_client_auth(),
        name @ "RequireAndVerifyClientCert" => builder.with_client_cert_verifier(verified(false, name)?),
        name @ "VerifyClientCertIfGiven" => builder.with_client_cert_verifier(verified(true, name)?),
        name @ ("RequestClientCert" | "RequireAnyClientCert") => {
            return Err(invalid(
                "tls_server_config.client_auth_type",
                format!(
                    "{name} is refused: it accepts a client certificate without verifying it against a CA, \
                     which authenticates nobody (use RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file)"
                ),
            ))
        }
        other => {
            return Err(invalid(
                "tls_server_config.client_auth_type",
                format!(
                    "{other:?} is not a client_auth_type (NoClientCert, RequestClientCert, RequireAnyClientCert, \
                     VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ),
            ))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("tls_server_config.key_file", format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    Ok(Arc::new(config))
}

/// Go's `tls.VersionTLS1x` names, as exporter-toolkit reads them.
fn version(key: &str, name: &str, invalid: &dyn Fn(&str, String) -> ConfigError) -> Result<u8, ConfigError> {
    match name {
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        "TLS10" | "TLS11" => Err(invalid(key, format!("{name} is refused: rustls implements TLS12 and TLS13 only"))),
        other => Err(invalid(key, format!("{other:?} is not a TLS version (TLS10, TLS11, TLS12, TLS13)"))),
    }
}

/// A TLS 1.2 suite by Go's name (both spellings of ChaCha20), or why not.
fn suite(name: &str) -> Result<SupportedCipherSuite, String> {
    Ok(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Err(format!("{name} is a TLS 1.3 suite: TLS 1.3's suites are not configurable (in Go either)"))
        }
        other if other.starts_with("TLS_") => {
            return Err(format!(
                "{other} is refused: rustls offers only ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2 \
                 (no CBC, RC4, 3DES or RSA key exchange)"
            ))
        }
        other => return Err(format!("{other:?} is not a cipher suite name")),
    })
}

/// A key-exchange group by Go's `tls.CurveID` name, or why not.
fn group(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    Ok(match name {
        "X25519" => kx_group::X25519,
        "CurveP256" | "P256" => kx_group::SECP256R1,
        "CurveP384" | "P384" => kx_group::SECP384R1,
        "X25519MLKEM768" => kx_group::X25519MLKEM768,
        "CurveP521" | "P521" => return Err(format!("{name} is refused: rustls has no P-521 key exchange")),
        other => return Err(format!("{other:?} is not a curve (X25519, CurveP256, CurveP384, X25519MLKEM768)")),
    })
}

/// The crypto provider narrowed to the configured TLS 1.2 suites and groups, and the versions.
fn provider_and_versions(
    raw: &RawTls,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(CryptoProvider, Vec<&'static SupportedProtocolVersion>), ConfigError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let min = raw.min_version.as_deref().map(|v| version("tls_server_config.min_version", v, invalid)).transpose()?;
    let max = raw.max_version.as_deref().map(|v| version("tls_server_config.max_version", v, invalid)).transpose()?;
    let (min, max) = (min.unwrap_or(2), max.unwrap_or(3));
    if min > max {
        return Err(invalid("tls_server_config.min_version", "is above max_version".into()));
    }
    let versions: Vec<&'static SupportedProtocolVersion> = [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, v)| v)
        .collect();
    if let Some(names) = &raw.cipher_suites {
        let key = "tls_server_config.cipher_suites";
        let mut suites: Vec<SupportedCipherSuite> =
            names.iter().map(|n| suite(n)).collect::<Result<_, _>>().map_err(|e| invalid(key, e))?;
        if suites.is_empty() {
            return Err(invalid(key, "is empty (leave it out for rustls' defaults)".into()));
        }
        // The TLS 1.3 suites stay, after the configured TLS 1.2 ones.
        suites.extend(provider.cipher_suites.iter().copied().filter(|s| s.version() == &rustls::version::TLS13));
        provider.cipher_suites = suites;
    }
    if let Some(names) = &raw.curve_preferences {
        let key = "tls_server_config.curve_preferences";
        let groups: Vec<&'static dyn SupportedKxGroup> =
            names.iter().map(|n| group(n)).collect::<Result<_, _>>().map_err(|e| invalid(key, e))?;
        if groups.is_empty() {
            return Err(invalid(key, "is empty (leave it out for rustls' defaults)".into()));
        }
        provider.kx_groups = groups;
    }
    Ok((provider, versions))
}

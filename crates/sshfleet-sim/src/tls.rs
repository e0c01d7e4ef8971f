//! The fleet's TLS identity: one CA made at start (rcgen) and one leaf certificate for
//! `127.0.0.1` and `localhost` signed by it, served by every camera through tokio-rustls.
//! Worker processes receive the identity so that a split fleet has one CA.

use std::io;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// What the cameras serve and what clients need to trust it.
#[derive(Clone)]
pub(crate) struct FleetTls {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for FleetTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetTls").finish_non_exhaustive()
    }
}

fn tls_error(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

/// The certificates and the leaf key, in a form that travels to worker processes
/// (DER as base64). A throwaway simulator key, but still kept out of `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct TlsIdentity {
    pub ca_pem: String,
    leaf_der: String,
    key_der: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// Generates the CA and a leaf certificate signed by it.
pub(crate) fn generate_identity() -> io::Result<TlsIdentity> {
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let ca = ca_params().self_signed(&ca_key).map_err(tls_error)?;
    let leaf_key = KeyPair::generate().map_err(tls_error)?;
    let leaf = leaf_params()?
        .signed_by(&leaf_key, &ca, &ca_key)
        .map_err(tls_error)?;
    Ok(TlsIdentity {
        ca_pem: ca.pem(),
        leaf_der: BASE64.encode(leaf.der()),
        key_der: BASE64.encode(leaf_key.serialize_der()),
    })
}

/// A rustls server config (ring provider) serving the identity's leaf.
pub(crate) fn serve(identity: &TlsIdentity) -> io::Result<FleetTls> {
    let decode = |text: &str| {
        BASE64
            .decode(text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    let leaf = decode(&identity.leaf_der)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(decode(&identity.key_der)?));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.into()], key)
        .map_err(tls_error)?;
    Ok(FleetTls {
        ca_pem: identity.ca_pem.clone(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "sshfleet simulator CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2049, 12, 31);
    params
}

fn leaf_params() -> io::Result<CertificateParams> {
    let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let ip = super::ports::listen_ip();
    if !ip.is_loopback() {
        names.push(ip.to_string());
    }
    let mut params = CertificateParams::new(names).map_err(tls_error)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "AXIS simulated camera");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2049, 12, 31);
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_pem_and_serves_its_leaf() -> io::Result<()> {
        let tls = serve(&generate_identity()?)?;
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        Ok(())
    }
}

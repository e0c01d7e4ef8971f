//! TLS trust for device connections: system roots or a CA bundle by default, SHA-256
//! certificate pins per device, or an explicit `--insecure`; and the certificate fingerprint.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// SHA-256 of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Accepts 64 hex digits, with or without `:` separators, any case, optional `sha256:` prefix.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let text = text.trim();
        let text = text
            .strip_prefix("sha256:")
            .or_else(|| text.strip_prefix("SHA256:"))
            .unwrap_or(text);
        let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Pinned certificate fingerprints: per device authority (`host:port`), or for any device.
#[derive(Clone, Debug, Default)]
pub struct Pins {
    by_authority: HashMap<String, Vec<Fingerprint>>,
    any: Vec<Fingerprint>,
}

impl Pins {
    /// Reads a pin file: one pin per line, `FINGERPRINT` (any device) or `ADDRESS FINGERPRINT`
    /// (comma, tab or space separated). `#` comments and blank lines are skipped. The address
    /// may be `host:port` or a URL; a previous scan's CSV (address, …, tls_fingerprint) works
    /// too, which makes trust-on-first-use a two-step: scan with `--insecure`, pin the report.
    pub fn load(path: &Path) -> Result<Pins, TlsSetupError> {
        let text = std::fs::read_to_string(path).map_err(|source| TlsSetupError::Read {
            path: path.to_owned(),
            source,
        })?;
        Pins::parse(&text).map_err(|line| TlsSetupError::BadPin {
            path: path.to_owned(),
            line,
        })
    }

    /// Parses pin lines; the error is the 1-based line number of the first bad line.
    pub fn parse(text: &str) -> Result<Pins, usize> {
        let mut pins = Pins::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line
                .split([',', '\t', ' '])
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            let Some(pin) = fields.iter().rev().find_map(|f| Fingerprint::parse(f)) else {
                // A CSV header, or a report row of a device that had no TLS.
                if i == 0 || line.contains(',') {
                    continue;
                }
                return Err(i + 1);
            };
            match fields.first().filter(|f| Fingerprint::parse(f).is_none()) {
                Some(address) => pins
                    .by_authority
                    .entry(authority_key(address))
                    .or_default()
                    .push(pin),
                None => pins.any.push(pin),
            }
        }
        Ok(pins)
    }

    pub fn is_empty(&self) -> bool {
        self.by_authority.is_empty() && self.any.is_empty()
    }

    /// The pins that apply to a device, or `None` when it has none (normal verification).
    fn for_authority(&self, authority: &str) -> Option<Vec<Fingerprint>> {
        let own = self.by_authority.get(&authority_key(authority));
        if own.is_none() && self.any.is_empty() {
            return None;
        }
        Some(
            own.into_iter()
                .flatten()
                .chain(&self.any)
                .copied()
                .collect(),
        )
    }
}

/// Normalises `https://Host:443/` or `host:443` to `host:443` for pin lookup.
fn authority_key(address: &str) -> String {
    let rest = address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .trim_end_matches('/');
    rest.to_ascii_lowercase()
}

/// How device certificates are trusted.
#[derive(Clone, Debug, Default)]
pub struct TrustSettings {
    /// Extra CA bundle (PEM) added to the system roots.
    pub ca_file: Option<PathBuf>,
    pub pins: Pins,
    /// Accept any certificate (the fingerprint is still recorded).
    pub insecure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    // The I/O error is the source, not part of the message: `{:#}` prints it once.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: certificate rejected: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path}: line {line} holds no SHA-256 fingerprint")]
    BadPin { path: PathBuf, line: usize },
    #[error("TLS setup failed")]
    Rustls(#[from] rustls::Error),
}

/// The client configurations a connection picks from, built once per run.
pub(crate) struct TlsConfigs {
    verifying: Arc<ClientConfig>,
    accept_any: Arc<ClientConfig>,
    pins: Pins,
    insecure: bool,
}

/// What a connection must check after its handshake.
pub(crate) enum PeerCheck {
    /// The verifier already did the work.
    Verified,
    /// The certificate must match one of these fingerprints.
    Pinned(Vec<Fingerprint>),
}

impl TlsConfigs {
    pub(crate) fn new(settings: &TrustSettings) -> Result<TlsConfigs, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = root_store(settings.ca_file.as_deref())?;
        let verifying = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let accept_any = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        Ok(TlsConfigs {
            verifying: Arc::new(with_alpn(verifying)),
            accept_any: Arc::new(with_alpn(accept_any)),
            pins: settings.pins.clone(),
            insecure: settings.insecure,
        })
    }

    /// The config for a device and what to check once connected.
    pub(crate) fn for_authority(&self, authority: &str) -> (Arc<ClientConfig>, PeerCheck) {
        if let Some(pins) = self.pins.for_authority(authority) {
            return (self.accept_any.clone(), PeerCheck::Pinned(pins));
        }
        if self.insecure {
            return (self.accept_any.clone(), PeerCheck::Verified);
        }
        (self.verifying.clone(), PeerCheck::Verified)
    }
}

fn with_alpn(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// System roots plus the optional CA bundle. Unreadable system certificates are skipped
/// (verification then fails per device with a clear TLS error, it never silently passes).
fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| TlsSetupError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut found = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|source| TlsSetupError::Read {
                path: path.to_owned(),
                source,
            })?;
            roots.add(cert).map_err(|e| TlsSetupError::BadCertificate {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(TlsSetupError::NoCertificate {
                path: path.to_owned(),
            });
        }
    }
    Ok(roots)
}

/// Accepts any certificate chain but still checks the handshake signatures, so the peer
/// must hold the key of the certificate whose fingerprint we record or pin.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_in_every_spelling() {
        let hex = "ab".repeat(32);
        let fp = Fingerprint::parse(&hex);
        assert_eq!(fp.map(|f| f.to_string()), Some(hex.clone()));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(Fingerprint::parse(&colons), fp);
        assert_eq!(Fingerprint::parse(&format!("sha256:{hex}")), fp);
        assert_eq!(Fingerprint::parse("abcd"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
    }

    #[test]
    fn pin_file_accepts_plain_lines_and_scan_reports() {
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        let text = format!(
            "address,status,tls_fingerprint\nhttps://10.0.0.1:443,ok,{a}\n# comment\n\n{b}\n"
        );
        let pins = Pins::parse(&text).ok();
        let pins = pins.as_ref();
        let for_device: Vec<String> = pins
            .and_then(|p| p.for_authority("10.0.0.1:443"))
            .map(|pins| pins.iter().map(|f| f.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(for_device, vec![a, b.clone()]);
        let for_other: Vec<String> = pins
            .and_then(|p| p.for_authority("10.0.0.2:443"))
            .map(|pins| pins.iter().map(|f| f.to_string()).collect())
            .unwrap_or_default();
        assert_eq!(for_other, vec![b]);
    }

    #[test]
    fn pin_file_rejects_lines_without_a_fingerprint() {
        assert_eq!(
            Pins::parse("# pins\n10.0.0.1:443 notahash\n").err(),
            Some(2)
        );
    }
}

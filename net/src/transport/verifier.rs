//! The TLS certificate checks: a node's certificate is only a wrapper around its Ed25519 key,
//! and the key's hash is the node id. Nothing about names, issuers, dates or chains matters.
//!
//! - The connecting side pins the node id from the FURL it dialled
//!   ([`PinnedServerVerifier`]): the server's certificate must hold an Ed25519 key hashing to
//!   exactly that id.
//! - The accepting side requires a client certificate with an Ed25519 key
//!   ([`Ed25519ClientVerifier`]); the caller's node id is read from it after the handshake
//!   ([`node_id_of`]).
//!
//! Both check the handshake signature (which proves the peer holds the key) with rustls's
//! own TLS 1.3 verification over the provider's algorithms, offer only Ed25519, and refuse
//! TLS 1.2 signatures outright (the configs allow TLS 1.3 only; this is a second lock).

use cairn_actors::NodeId;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerIncompatible,
    SignatureScheme,
};

/// The node id of the key in `cert`, if `cert` is a well-formed certificate holding an
/// Ed25519 public key (and nothing else is asked of it).
pub fn node_id_of(cert: &CertificateDer<'_>) -> Result<NodeId, Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    let key = VerifyingKey::from_public_key_der(spki.as_ref())
        .map_err(|_| Error::General("the certificate's key is not an Ed25519 key".into()))?;
    Ok(NodeId::of_public_key(key.as_bytes()))
}

/// Accepts only a lone end-entity certificate: a peer has no business sending a chain.
fn lone(intermediates: &[CertificateDer<'_>]) -> Result<(), Error> {
    if intermediates.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidCertificate(CertificateError::BadEncoding))
    }
}

/// Checks a TLS 1.3 handshake signature by `cert`'s key, Ed25519 only.
fn verify_signature(
    algorithms: &WebPkiSupportedAlgorithms,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(PeerIncompatible::NoSignatureSchemesInCommon.into());
    }
    verify_tls13_signature(message, cert, dss, algorithms)
}

/// TLS 1.2 is never accepted.
fn refuse_tls12() -> Result<HandshakeSignatureValid, Error> {
    Err(Error::General("TLS 1.2 is not accepted".into()))
}

/// The connecting side's check: the server must prove the key of the node we dialled.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    expected: NodeId,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedServerVerifier {
    /// A verifier that accepts only node `expected`, checking signatures with `algorithms`
    /// (the crypto provider's).
    pub fn new(expected: NodeId, algorithms: WebPkiSupportedAlgorithms) -> Self {
        PinnedServerVerifier {
            expected,
            algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        lone(intermediates)?;
        let proved = node_id_of(end_entity)?;
        if proved == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            let expected = self.expected;
            Err(Error::General(format!(
                "the peer holds the key of node {proved}, not of {expected} named in the FURL"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(&self.algorithms, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The accepting side's check: the caller must present an Ed25519 certificate and prove its
/// key; who it is, is decided by that key alone.
#[derive(Debug)]
pub struct Ed25519ClientVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl Ed25519ClientVerifier {
    /// A verifier checking signatures with `algorithms` (the crypto provider's).
    pub fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        Ed25519ClientVerifier { algorithms }
    }
}

impl ClientCertVerifier for Ed25519ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        lone(intermediates)?;
        node_id_of(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(&self.algorithms, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

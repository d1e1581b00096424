//! A node's TLS identity and configurations: a self-signed certificate around the node's own
//! Ed25519 key (so the certificate's key hashes to the node id), TLS 1.3 only, ring as the
//! only crypto provider, mutual authentication with the checks of [`super::verifier`].

use super::verifier::{Ed25519ClientVerifier, PinnedServerVerifier};
use cairn_actors::{NodeId, NodeKey};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The name a dialler puts in its handshake: every node answers to it, since who the peer is
/// gets decided by its key, not by a name.
const SERVER_NAME: &str = "cairn.invalid";

/// Why a node's TLS identity could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key would not encode as PKCS#8.
    #[error("could not encode the node key as PKCS#8: {0}")]
    Pkcs8(String),
    /// The certificate could not be made.
    #[error("could not make the node's self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("could not configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// A node's certificate and key, and its TLS configurations.
pub struct Identity {
    provider: Arc<CryptoProvider>,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    acceptor: TlsAcceptor,
}

impl Identity {
    /// The TLS identity of the node with `key`.
    pub fn new(key: &NodeKey) -> Result<Identity, IdentityError> {
        let pkcs8 = SigningKey::from_bytes(&key.seed())
            .to_pkcs8_der()
            .map_err(|e| IdentityError::Pkcs8(e.to_string()))?;
        let key = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
        let cert = self_signed(&key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&provider, &cert, &key)?));
        Ok(Identity {
            provider,
            cert,
            key,
            acceptor,
        })
    }

    /// Accepts connections from any node that proves its key.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Connects to node `expected` only: any other key fails the handshake.
    pub fn connector(&self, expected: NodeId) -> Result<TlsConnector, rustls::Error> {
        let algorithms = self.provider.signature_verification_algorithms;
        let verifier = PinnedServerVerifier::new(expected, algorithms);
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(vec![self.cert.clone()], self.private_key())?;
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The name to dial.
    pub fn server_name() -> ServerName<'static> {
        ServerName::DnsName(SERVER_NAME.try_into().expect("a constant, valid DNS name"))
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// A certificate signed by `key` for `key`'s public half.
fn self_signed(key: &PrivatePkcs8KeyDer<'_>) -> Result<CertificateDer<'static>, IdentityError> {
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(key, &rcgen::PKCS_ED25519)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cairn node");
    Ok(params.self_signed(&pair)?.der().clone())
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    cert: &CertificateDer<'static>,
    key: &PrivatePkcs8KeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let verifier = Ed25519ClientVerifier::new(provider.signature_verification_algorithms);
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))?;
    // Each dial uses a fresh client configuration (it pins one node id), so resumption
    // tickets would never be used: do not send or keep them.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::verifier::node_id_of;

    #[test]
    fn the_certificate_key_hashes_to_the_node_id() {
        let key = NodeKey::from_seed([5; 32]);
        let identity = Identity::new(&key).expect("identity");
        assert_eq!(
            node_id_of(&identity.cert).expect("an Ed25519 cert"),
            key.id()
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        assert!(node_id_of(&garbage).is_err());
    }
}

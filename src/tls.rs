//! TLS over monoio's rent IO, for the client (`http::Conn`) and the built-in target: rustls
//! driven by hand on the TCP socket, no adapter crate. Ciphertext is read into one reused buffer
//! per connection and fed to rustls; decrypted bytes go straight into the caller's read buffer;
//! outgoing plaintext is sealed into the caller's write buffer, so a request's write stays one
//! write op. Each connection's rustls state belongs to its reading side; nothing is shared
//! between tasks.
//!
//! Client configuration (`client_config`): certificate verification against the webpki roots
//! (Mozilla's) plus `--ca-cert`, or `--insecure` (any certificate, but the handshake signatures
//! are still checked); client certificates (mTLS); SNI from the URL's host; ALPN `http/1.1`;
//! session resumption from an in-memory cache shared by all connections of the run.

use std::io::{self, BufRead, Read, Write};
use std::ops::DerefMut;
use std::path::Path;
use std::sync::Arc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ConnectionCommon, DigitallySignedStruct, ServerConfig, SignatureScheme};

/// Ciphertext read per op: one full TLS record and its overhead.
const CIPHER_BUFFER_BYTES: usize = 16 * 1024 + 512;

/// How a TLS connection ended or failed.
#[derive(Debug)]
pub enum TlsError {
    Io(io::Error),
    Tls(rustls::Error),
    /// The peer closed TCP during the handshake.
    Eof,
}

/// The TLS settings of a run (command line or scenario file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// Accept any certificate (handshake signatures are still verified).
    pub insecure: bool,
    /// Extra trusted roots (PEM), beside the webpki roots.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Client certificate chain and key (PEM), for servers that ask for one.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Where a TLS connection goes: the run's client configuration and the name sent as SNI and
/// checked against the certificate.
#[derive(Clone, Debug)]
pub struct Target {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.name == other.name
    }
}

impl Target {
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<Target, String> {
        let name =
            ServerName::try_from(host.to_string()).map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
        Ok(Target { config, name })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the run's client configuration; errors name the file and what is wrong with it.
pub fn client_config(options: &ClientOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if options.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &options.ca_cert {
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &options.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| format!("--client-cert {} / --client-key {}: {e}", cert.display(), key.display()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Reconnect-heavy runs (Connection: close, many users) resume instead of full handshakes.
    config.resumption = rustls::client::Resumption::in_memory_sessions(4096);
    Ok(Arc::new(config))
}

/// A server configuration from PEM files (the target's `--tls-cert/--tls-key`), offering ALPN
/// `http/1.1`, with an in-memory session cache and tickets for resumption. With `client_ca`,
/// clients must present a certificate signed by it (mTLS).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8], client_ca: Option<&[u8]>) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("private key: {e}"))?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match client_ca {
        Some(ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem) {
                roots.add(cert.map_err(|e| format!("client CA: {e}"))?).map_err(|e| format!("client CA: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in the file", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: no usable PEM private key: {e}", path.display()))
}

/// `--insecure`: any certificate chain is accepted, but the server must still prove it holds
/// the key of the certificate it sent (the handshake signature is checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The handshake's signature is still checked: only the certificate chain is not.
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One TLS connection's state on its reading side: rustls and the ciphertext not yet fed to it.
pub struct Session<C> {
    pub conn: C,
    cipher: Vec<u8>,
    pos: usize,
}

impl<C, D> Session<C>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
{
    pub fn new(conn: C) -> Session<C> {
        Session { conn, cipher: Vec::with_capacity(CIPHER_BUFFER_BYTES), pos: 0 }
    }

    /// Runs the handshake to completion on `stream` (before it is split).
    pub async fn handshake<S>(&mut self, stream: &mut S) -> Result<(), TlsError>
    where
        S: AsyncReadRent + monoio::io::AsyncWriteRent,
    {
        let mut out = Vec::new();
        loop {
            self.flush_into(&mut out)?;
            if !out.is_empty() {
                let (result, buf) = stream.write_all(std::mem::take(&mut out)).await;
                out = buf;
                out.clear();
                result.map_err(TlsError::Io)?;
            }
            if !self.conn.is_handshaking() {
                return Ok(());
            }
            if self.pos == self.cipher.len() && self.read_cipher(stream).await? == 0 {
                return Err(TlsError::Eof);
            }
            if let Err(err) = self.feed() {
                // Tell the peer why (rustls queued an alert), best effort.
                if self.flush_into(&mut out).is_ok() && !out.is_empty() {
                    let _ = stream.write_all(out).await;
                }
                return Err(err);
            }
        }
    }

    /// Seals `plain` and anything rustls has pending (alerts, key updates) into `out`. rustls
    /// buffers at most 64 KiB of plaintext, so larger writes go in turns: take what it accepts,
    /// move the records out, repeat.
    pub fn seal(&mut self, mut plain: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        loop {
            let taken = self.conn.writer().write(plain).map_err(TlsError::Io)?;
            plain = &plain[taken..];
            self.flush_into(out)?;
            if plain.is_empty() {
                return Ok(());
            }
            if taken == 0 && !self.conn.wants_write() {
                return Err(TlsError::Io(io::ErrorKind::WriteZero.into()));
            }
        }
    }

    /// Appends rustls's pending records to `out`.
    fn flush_into(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        while self.conn.wants_write() {
            self.conn.write_tls(out).map_err(TlsError::Io)?;
        }
        Ok(())
    }

    /// Decrypted bytes appended to `into` (which must have spare capacity; it is not grown): how
    /// many, 0 at the end of the stream (close_notify, or TCP closed). One copy, from rustls's
    /// plaintext queue into the free part of `into`.
    pub async fn fill<R: AsyncReadRent>(&mut self, stream: &mut R, into: &mut Vec<u8>) -> Result<usize, TlsError> {
        loop {
            let room = into.capacity() - into.len();
            let mut reader = self.conn.reader();
            let copied = match reader.fill_buf() {
                Ok(chunk) => {
                    let n = chunk.len().min(room);
                    into.extend_from_slice(&chunk[..n]);
                    Some(n)
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
                Err(err) => return Err(TlsError::Io(err)),
            };
            if let Some(n) = copied {
                reader.consume(n);
                return Ok(n);
            }
            if self.pos == self.cipher.len() && self.read_cipher(stream).await? == 0 {
                return Ok(0);
            }
            self.feed()?;
        }
    }

    /// Reads ciphertext into the buffer (whose contents were all fed); 0 at end of stream.
    async fn read_cipher<R: AsyncReadRent>(&mut self, stream: &mut R) -> Result<usize, TlsError> {
        self.cipher.clear();
        self.pos = 0;
        let (result, slice) = stream.read(std::mem::take(&mut self.cipher).slice_mut(0..)).await;
        self.cipher = slice.into_inner();
        result.map_err(TlsError::Io)
    }

    /// Feeds buffered ciphertext to rustls (as much as it takes) and processes it.
    fn feed(&mut self) -> Result<(), TlsError> {
        let mut rest = &self.cipher[self.pos..];
        let before = rest.len();
        let taken = self.conn.read_tls(&mut rest as &mut dyn Read).map_err(TlsError::Io);
        self.pos += before - rest.len();
        taken?;
        self.conn.process_new_packets().map_err(TlsError::Tls)?;
        Ok(())
    }
}

/// A short, fixed description of a TLS failure for the error tables (the hot path keeps only
/// this `&'static str`).
pub fn describe(err: &TlsError) -> &'static str {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match err {
        TlsError::Eof => "server closed the connection during the handshake",
        TlsError::Io(_) => "I/O error during TLS",
        TlsError::Tls(err) => match err {
            E::InvalidCertificate(C::UnknownIssuer) => "certificate: unknown issuer (use --ca-cert or --insecure)",
            E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
                "certificate: not valid for the host name"
            }
            E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "certificate: expired",
            E::InvalidCertificate(C::BadSignature) => "certificate: bad signature",
            // `openssl req -x509`'s default: a self-signed certificate that is also a CA.
            E::InvalidCertificate(C::Other(other)) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                "certificate: self-signed (a CA certificate serving as the server's own); use --insecure, \
                 or serve a certificate signed by a CA given with --ca-cert"
            }
            E::InvalidCertificate(_) => "certificate: invalid",
            E::AlertReceived(A::CertificateRequired) => "server requires a client certificate (--client-cert)",
            E::AlertReceived(A::BadCertificate | A::UnknownCA) => "server rejected the client certificate",
            E::AlertReceived(A::HandshakeFailure) => "server refused the handshake",
            E::AlertReceived(A::NoApplicationProtocol) => "server does not offer ALPN http/1.1",
            E::AlertReceived(_) => "alert from the server",
            E::NoApplicationProtocol => "server does not offer ALPN http/1.1",
            E::PeerIncompatible(_) => "server is incompatible (versions or cipher suites)",
            E::DecryptError => "decryption failed",
            E::InvalidMessage(_) | E::PeerMisbehaved(_) | E::InappropriateMessage { .. } => "server sent invalid TLS",
            _ => "TLS error",
        },
    }
}

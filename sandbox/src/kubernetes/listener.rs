//! One loopback port that speaks both plain HTTP and HTTPS, told apart by the first byte a
//! client sends (0x16 opens a TLS handshake record; no HTTP method starts with it).
//!
//! TLS is there because client-go (so `kubectl`) sends bearer tokens only over TLS
//! connections: against `http://` it sends no `Authorization` header at all
//! (kubernetes/kubectl#744). [`super::ApiServer::kubeconfig`] therefore points at
//! `https://127.0.0.1:PORT` and carries the sandbox CA; [`super::ApiServer::url`] stays
//! `http://` for clients configured by hand.
//!
//! The certificate is a fixed test fixture (`tls/`: a CA and a leaf for `127.0.0.1` and
//! `localhost`, valid until 2126); its private key is public and protects nothing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub(crate) const CA_PEM: &str = include_str!("tls/ca.pem");
const SERVER_CERTIFICATE_PEM: &str = include_str!("tls/server.pem");
const SERVER_KEY_PEM: &str = include_str!("tls/server.key");

/// A client that connects and sends nothing for this long is dropped, so it cannot hold a
/// handshake slot forever.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

fn tls_config() -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certificates = CertificateDer::pem_slice_iter(SERVER_CERTIFICATE_PEM.as_bytes())
        .chain(CertificateDer::pem_slice_iter(CA_PEM.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes()).map_err(io::Error::other)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(certificates, key)
    .map_err(io::Error::other)?;
    // The server speaks HTTP/1 only; clients offering h2 fall back to it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// An accepted connection, TLS or not.
pub(crate) enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write(context, buffer),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, buffer),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}

/// What `axum::serve` accepts from: connections whose first bytes have been looked at (and
/// whose TLS handshake, if any, is done), handed over by the acceptor task.
pub(crate) struct Incoming {
    connections: mpsc::Receiver<(Connection, SocketAddr)>,
    local_address: SocketAddr,
}

impl axum::serve::Listener for Incoming {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The acceptor stopped: no connection will ever come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_address)
    }
}

/// Starts accepting on `listener`; the task ends when the returned [`Incoming`] is dropped
/// (or the task is aborted).
pub(crate) fn incoming(listener: TcpListener) -> io::Result<(Incoming, JoinHandle<()>)> {
    let local_address = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config()?));
    let (sender, connections) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = sender.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, as axum does.
                    tracing::debug!(%error, "kubernetes sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                let classified = tokio::time::timeout(FIRST_BYTES_TIMEOUT, async {
                    let mut first = [0_u8; 1];
                    stream.peek(&mut first).await?;
                    if first == [TLS_HANDSHAKE] {
                        let tls = acceptor.accept(stream).await?;
                        Ok::<_, io::Error>(Connection::Tls(Box::new(tls)))
                    } else {
                        Ok(Connection::Plain(stream))
                    }
                })
                .await;
                match classified {
                    Ok(Ok(connection)) => {
                        // A closed channel means the server is stopping; the connection is
                        // dropped with it.
                        let _ = sender.send((connection, peer)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %peer, "kubernetes sandbox handshake failed");
                    }
                    Err(_) => tracing::debug!(%peer, "kubernetes sandbox client sent nothing"),
                }
            });
        }
    });
    Ok((
        Incoming {
            connections,
            local_address,
        },
        task,
    ))
}

/// Standard base64 with padding, for `certificate-authority-data`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let symbol =
        |index: u32| char::from(ALPHABET.get((index & 63) as usize).copied().unwrap_or(b'='));
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let [first, second, third] = match *chunk {
            [a] => [a, 0, 0],
            [a, b] => [a, b, 0],
            [a, b, c] => [a, b, c],
            _ => continue,
        };
        let group = (u32::from(first) << 16) | (u32::from(second) << 8) | u32::from(third);
        encoded.push(symbol(group >> 18));
        encoded.push(symbol(group >> 12));
        encoded.push(if chunk.len() > 1 {
            symbol(group >> 6)
        } else {
            '='
        });
        encoded.push(if chunk.len() > 2 { symbol(group) } else { '=' });
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn the_fixture_makes_a_tls_config() -> std::io::Result<()> {
        super::tls_config().map(drop)
    }
}

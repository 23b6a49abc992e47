//! The client connection: plain TCP or TLS over TCP, and its split into a read half and a
//! write half for the forwarding loop.
//!
//! An enum rather than a boxed trait object so that the halves of a plain TCP connection are
//! tokio's borrowed `TcpStream::split` halves, which need no lock; `tokio::io::split`, which
//! takes a lock on every poll, is only used for TLS, whose reads and writes share one state.
//! Owns no policy: bytes only.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{ReadHalf as TcpReadHalf, WriteHalf as TcpWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a TLS handshake owns the TCP stream (see [`ClientStream::take_tcp`]); reads
    /// and writes fail.
    Detached,
}

/// The read half of a split [`ClientStream`].
pub enum ClientReader<'a> {
    Plain(TcpReadHalf<'a>),
    Tls(tokio::io::ReadHalf<&'a mut TlsStream<TcpStream>>),
    Detached,
}

/// The write half of a split [`ClientStream`].
pub enum ClientWriter<'a> {
    Plain(TcpWriteHalf<'a>),
    Tls(tokio::io::WriteHalf<&'a mut TlsStream<TcpStream>>),
    Detached,
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "client stream detached during a TLS handshake")
}

impl ClientStream {
    /// The plain TCP stream, for a TLS handshake; `None` if the stream is already TLS.
    pub fn take_tcp(&mut self) -> Option<TcpStream> {
        match std::mem::replace(self, ClientStream::Detached) {
            ClientStream::Plain(tcp) => Some(tcp),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Read and write halves that can be used at the same time by one task.
    pub fn split(&mut self) -> (ClientReader<'_>, ClientWriter<'_>) {
        match self {
            ClientStream::Plain(tcp) => {
                let (r, w) = tcp.split();
                (ClientReader::Plain(r), ClientWriter::Plain(w))
            }
            ClientStream::Tls(tls) => {
                let (r, w) = tokio::io::split(&mut **tls);
                (ClientReader::Tls(r), ClientWriter::Tls(w))
            }
            ClientStream::Detached => (ClientReader::Detached, ClientWriter::Detached),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
            ClientStream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
            ClientStream::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
            ClientStream::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
            ClientStream::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncRead for ClientReader<'_> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientReader::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientReader::Tls(s) => Pin::new(s).poll_read(cx, buf),
            ClientReader::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for ClientWriter<'_> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientWriter::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientWriter::Tls(s) => Pin::new(s).poll_write(cx, buf),
            ClientWriter::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWriter::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientWriter::Tls(s) => Pin::new(s).poll_flush(cx),
            ClientWriter::Detached => Poll::Ready(Err(detached())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWriter::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientWriter::Tls(s) => Pin::new(s).poll_shutdown(cx),
            ClientWriter::Detached => Poll::Ready(Err(detached())),
        }
    }
}

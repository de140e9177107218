//! A channel connection between the two roles ([`Transport`]) and the frames read from it
//! ([`FrameReader`]).
//!
//! A channel is a reliable, ordered link that carries whole frames. Stream transports (TCP and
//! AF_UNIX) carry frames back to back; each frame is self-delimiting through its length field.

mod error;
mod reader;

pub use error::{FrameError, ReadError};
pub use reader::{FrameReader, HANDSHAKE_BUF};

use crate::doca;
use crate::sys::reactor::{self, Io};
use crate::sys::unix_socket::{self, UnixStream};
use crate::wire::STREAM_MAX_MSG;
use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;

/// One established channel connection.
#[derive(Clone)]
pub enum Transport {
    /// TCP, e.g. over the host-DPU tmfifo link.
    Tcp(Rc<Io<TcpStream>>),
    /// AF_UNIX stream socket.
    Unix(Rc<Io<UnixStream>>),
    /// A DOCA connection (Comm Channel or Comch, the same bridge); each message holds whole
    /// frames.
    Doca(Rc<doca::Link>),
}

impl Transport {
    /// A TCP channel connection, with Nagle off: frames are written whole, and a small one
    /// (a round trip's DATA, a WINDOW) must not wait for the previous one's ACK.
    pub fn tcp(s: async_net::TcpStream) -> io::Result<Transport> {
        s.set_nodelay(true)?;
        Ok(Transport::Tcp(Rc::new(reactor::own(s.into())?)))
    }

    /// An AF_UNIX channel connection, accepted or connected by `sys::unix_socket` (which sets
    /// its send buffer).
    pub fn unix(s: Io<UnixStream>) -> Transport {
        Transport::Unix(Rc::new(s))
    }

    /// Connects the host side's `unix:PATH` channel.
    pub async fn connect_unix(path: &std::path::Path) -> io::Result<Transport> {
        unix_socket::connect_channel(path)
            .await
            .map(Transport::unix)
    }

    /// An AF_UNIX socket of any type as a channel (a SEQPACKET one stands in for a DOCA
    /// channel's message boundaries in tests and fuzz targets). Must be used on the thread
    /// that runs [`reactor::block_on`].
    #[cfg(unix)]
    pub fn unix_socket(s: UnixStream) -> io::Result<Transport> {
        unix_socket::own_any(s).map(Transport::unix)
    }
}

impl Transport {
    /// Reads some bytes; 0 means the peer closed the channel.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read_some(buf).await,
            Transport::Unix(s) => s.read_some(buf).await,
            Transport::Doca(l) => l.read(buf).await,
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(buf).await,
            Transport::Unix(s) => s.write_all(buf).await,
            Transport::Doca(l) => l.write_frames(buf).await,
        }
    }

    /// Writes all of `bufs`, in order: the sealed records of an encrypted channel, written
    /// where they lie. A DOCA channel copies each message into its own buffers anyway, so it
    /// gets them joined.
    pub async fn write_all_vectored(&self, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all_vectored(bufs).await,
            Transport::Unix(s) => s.write_all_vectored(bufs).await,
            Transport::Doca(_) => {
                let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                self.write_all(&joined).await
            }
        }
    }

    /// Closes both directions so that a blocked reader or writer wakes up.
    pub fn close(&self) {
        let _ = match self {
            Transport::Tcp(s) => s.get_ref().shutdown(Shutdown::Both),
            Transport::Unix(s) => s.get_ref().shutdown(Shutdown::Both),
            // The link disconnects its peer when the last clone is dropped.
            Transport::Doca(_) => Ok(()),
        };
    }

    /// Lowers the message size used to pack frames to what the peer accepts too.
    pub fn limit_max_msg(&self, agreed: u32) {
        match self {
            Transport::Doca(l) => l.limit_max_msg(agreed),
            Transport::Tcp(_) | Transport::Unix(_) => {}
        }
    }

    /// Whether the transport splits DATA frames larger than its messages when it packs them
    /// ([`crate::wire::pack_messages`]): the DOCA channels.
    pub fn splits_data(&self) -> bool {
        matches!(self, Transport::Doca(_))
    }

    /// Largest message this transport carries, header included.
    pub fn max_msg(&self) -> u32 {
        match self {
            Transport::Doca(l) => l.max_msg.get(),
            _ => STREAM_MAX_MSG,
        }
    }
}

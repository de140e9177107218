//! Host connections on a Comm Channel endpoint: the DPU's listener, which tells hosts apart by
//! the user data of their peer address, and the link used as a channel transport.
//!
//! The DPU serves one host at a time. A second host is disconnected while the first is served,
//! so that an unauthenticated newcomer can never end the current session (the same rule as
//! over Comch); the host retries and gets in once the old session has ended.

use super::ffi::DocaError;
use super::{Endpoint, Peer};
use event_listener::Event;
use std::cell::Cell;
use std::rc::Rc;

/// DPU side: hands out one host connection at a time from the listening endpoint.
pub struct Listener {
    /// The listening endpoint.
    pub ep: Rc<Endpoint>,
    /// Whether a [`Link`] is reading from the endpoint now.
    busy: Cell<bool>,
    idle: Event,
    next_tag: Cell<u64>,
}

/// One host connection on a DOCA endpoint, used as a channel transport.
pub struct Link {
    /// The endpoint the connection lives on.
    pub ep: Rc<Endpoint>,
    /// The peer's address.
    pub peer: Peer,
    /// Message size both sides accept (set by the handshake).
    max_msg: Cell<u32>,
    listener: Option<Rc<Listener>>,
}

impl Listener {
    /// Wraps a listening endpoint.
    pub fn new(ep: Endpoint) -> Rc<Listener> {
        Rc::new(Listener {
            ep: Rc::new(ep),
            busy: Cell::new(false),
            idle: Event::new(),
            next_tag: Cell::new(1),
        })
    }

    /// Waits for a host: returns its link and its first message.
    pub async fn accept(self: &Rc<Self>) -> Result<(Link, Vec<u8>), String> {
        loop {
            if !self.busy.get() {
                let mut buf = vec![0u8; self.ep.max_msg as usize];
                match self.ep.recv(&mut buf).await {
                    Ok((n, peer)) if self.ep.user_data(peer) == 0 => {
                        buf.truncate(n);
                        return Ok((self.link(peer), buf));
                    }
                    Ok(_) => {} // a host we already dropped: ignore its leftovers
                    Err((e, peer)) if !peer.is_null() => {
                        log::debug!("DOCA: peer gone while idle: {}", self.ep.describe(e));
                        self.ep.disconnect(peer);
                    }
                    Err((e, _)) => {
                        return Err(format!(
                            "Comm Channel receive failed: {}",
                            self.ep.describe(e)
                        ))
                    }
                }
            } else {
                let l = self.idle.listen();
                if self.busy.get() {
                    l.await;
                }
            }
        }
    }

    fn link(self: &Rc<Self>, peer: Peer) -> Link {
        let tag = self.next_tag.get();
        self.next_tag.set(tag + 1);
        self.ep.set_user_data(peer, tag);
        self.busy.set(true);
        Link {
            max_msg: Cell::new(self.ep.max_msg),
            ep: self.ep.clone(),
            peer,
            listener: Some(self.clone()),
        }
    }
}

impl Link {
    /// Host side: a link to the service the endpoint connected to.
    pub fn connected(ep: Endpoint, peer: Peer) -> Link {
        Link {
            max_msg: Cell::new(ep.max_msg),
            ep: Rc::new(ep),
            peer,
            listener: None,
        }
    }

    /// Lowers the packing size to what the peer accepts too.
    pub fn limit_max_msg(&self, agreed: u32) {
        self.max_msg.set(self.max_msg.get().min(agreed));
    }

    /// Receives the next message from this link's peer.
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        loop {
            match self.ep.recv(buf).await {
                Ok((n, from)) if from == self.peer => return Ok(n),
                Ok((_, from)) => {
                    if self.ep.user_data(from) == 0 {
                        log::warn!("DOCA: refusing a second host connection; one host at a time");
                    }
                    // A second host, or leftovers of one we dropped.
                    self.ep.disconnect(from);
                }
                Err((e, from)) if from.is_null() || from == self.peer => {
                    let kind = if e == DocaError::CONNECTION_RESET || e == DocaError::NOT_CONNECTED
                    {
                        ErrorKind::ConnectionReset
                    } else {
                        ErrorKind::Other
                    };
                    return Err(Error::new(kind, self.ep.describe(e)));
                }
                Err((_, from)) => self.ep.disconnect(from),
            }
        }
    }

    /// Sends `buf`, which holds whole frames, packed into messages of at most `max_msg` bytes.
    pub async fn write_frames(&self, buf: &[u8]) -> std::io::Result<()> {
        for msg in crate::protocol::pack_frames(buf, self.max_msg.get() as usize) {
            self.ep.send(self.peer, msg?).await.map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::ConnectionReset, self.ep.describe(e))
            })?;
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            self.ep.disconnect(self.peer);
            listener.busy.set(false);
            listener.idle.notify(usize::MAX);
        }
    }
}

//! The DOCA Comm Channel backend (DOCA 1.5 to 2.8), loaded at run time.
//!
//! The endpoint is non-blocking: send and receive answer "try again" when a queue is full or
//! empty. The relay then arms the endpoint's event channel, tries once more (so that an event
//! that arrived before arming is not lost) and only then waits for the event fd to become
//! readable in the async reactor. The fds belong to the endpoint and are never closed here.

pub mod device;
pub mod ffi;
mod link;

pub use link::{Link, Listener};

pub use device::Device;

use crate::config::Role;
use async_io::Async;
use device::check;
use ffi::{Addr, CcLib, DocaError, Ep};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::ptr;
use std::rc::Rc;

/// Queue depth asked for, capped by what the device allows.
const QUEUE_SIZE: u32 = 512;
/// Message size asked for, capped by the device (DOCA's samples use 4080).
const WANT_MSG: u32 = 65535;

/// Which DOCA channel API drives the device.
pub enum Api {
    /// DOCA Comm Channel (DOCA 1.5 to 2.8).
    CommChannel(Rc<CcLib>),
    /// DOCA Comch (DOCA 2.7 and later).
    Comch(std::sync::Arc<crate::comch::ffi::ComchLib>),
}

/// The DOCA channel chosen at start-up: the device plus the library that drives it.
pub struct Backend {
    /// The opened device.
    pub dev: Rc<Device>,
    /// The channel API.
    pub api: Api,
}

fn version_note(v: &Option<String>) -> String {
    v.as_ref()
        .map(|v| format!(", DOCA {v}"))
        .unwrap_or_default()
}

/// Which DOCA channel library this machine has, for `-v`.
pub fn installed() -> String {
    match (crate::comch::ffi::ComchLib::load(), CcLib::load()) {
        (Ok(c), _) => format!(
            "DOCA Comch ({}, {} API{})",
            c.file,
            c.generation,
            version_note(&c.version)
        ),
        (Err(_), Ok(cc)) => format!(
            "DOCA Comm Channel ({}{})",
            cc.file,
            version_note(&device::DevLib::load().ok().and_then(|d| d.version))
        ),
        (Err(_), Err(_)) => "no DOCA channel library (the tcp and unix channels work)".into(),
    }
}

impl Backend {
    /// Loads the channel library (`--channel doca`: Comch if installed, else Comm Channel) and
    /// opens the device named by `-p` (and `-r` on the DPU).
    pub fn open(cfg: &crate::config::Config) -> Result<Backend, String> {
        use crate::comch::ffi::ComchLib;
        use crate::config::ChannelAddr;
        let api = match cfg.channel {
            ChannelAddr::Comch => Api::Comch(std::sync::Arc::new(ComchLib::load()?)),
            ChannelAddr::CommChannel => Api::CommChannel(Rc::new(CcLib::load()?)),
            _ => match ComchLib::load() {
                Ok(c) => Api::Comch(std::sync::Arc::new(c)),
                Err(comch) => match CcLib::load() {
                    Ok(cc) => Api::CommChannel(Rc::new(cc)),
                    Err(cc) => {
                        return Err(format!(
                            "no DOCA channel library: {comch} (DOCA 2.7+ Comch); {cc} (DOCA 1.5-2.8 Comm Channel)"
                        ))
                    }
                },
            },
        };
        let dev = Device::open(cfg)?;
        match &api {
            Api::Comch(c) => log::info!(
                "DOCA Comch backend: {} ({} API{})",
                c.file,
                c.generation,
                version_note(&c.version)
            ),
            Api::CommChannel(cc) => log::info!(
                "DOCA Comm Channel backend: {}{}",
                cc.file,
                version_note(&dev.lib.version)
            ),
        }
        Ok(Backend { dev, api })
    }
}

/// A peer address handed out by an endpoint. Only this module makes them, so the pointer
/// inside always came from the library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(*mut Addr);

impl Peer {
    fn is_null(self) -> bool {
        self.0.is_null()
    }
}

/// An event channel fd owned by the endpoint: registering it must not close it.
struct EventFd(RawFd);

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the endpoint keeps the fd open until `ep_destroy`, which runs only after
        // this wrapper (and its reactor registration) is dropped.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

/// A listening (DPU) or connecting (host) endpoint.
pub struct Endpoint {
    dev: Rc<Device>,
    cc: Rc<CcLib>,
    ep: *mut Ep,
    send_ev: Option<Async<EventFd>>,
    recv_ev: Option<Async<EventFd>>,
    /// Largest message in force.
    pub max_msg: u32,
}

impl Endpoint {
    /// Creates an endpoint, sizes it from the device's limits, and listens (DPU) or starts
    /// connecting (host). The host gets the peer address to poll with [`Endpoint::connected`].
    pub fn start(
        dev: &Rc<Device>,
        cc: &Rc<CcLib>,
        role: Role,
        name: &str,
    ) -> Result<(Endpoint, Peer), String> {
        let d = &dev.lib;
        let l = cc.as_ref();
        let mut ep = ptr::null_mut();
        // SAFETY: out-pointer valid.
        check(d, "creating the Comm Channel endpoint", unsafe {
            (l.ep_create)(&mut ep)
        })?;
        let mut me = Endpoint {
            dev: dev.clone(),
            cc: cc.clone(),
            ep,
            send_ev: None,
            recv_ev: None,
            max_msg: 0,
        };
        // SAFETY: `dev.dev` is open.
        let info = unsafe { (d.dev_as_devinfo)(dev.dev) };
        let cap = |f: unsafe extern "C" fn(*mut ffi::DevInfo, *mut u32) -> DocaError, want: u32| {
            let mut max = 0u32;
            // SAFETY: valid devinfo and out-pointer.
            match unsafe { f(info, &mut max) } {
                DocaError::SUCCESS if max > 0 => want.min(max),
                _ => want,
            }
        };
        let msg = cap(l.get_max_message_size, WANT_MSG).min(u16::MAX as u32) as u16;
        let sq = cap(l.get_max_send_queue_size, QUEUE_SIZE).min(u16::MAX as u32) as u16;
        let rq = cap(l.get_max_recv_queue_size, QUEUE_SIZE).min(u16::MAX as u32) as u16;
        // SAFETY: `ep` is a fresh endpoint, `dev`/`rep` are open for its whole life.
        unsafe {
            check(
                d,
                "setting the endpoint device",
                (l.ep_set_device)(ep, dev.dev),
            )?;
            if role == Role::Dpu {
                check(
                    d,
                    "setting the endpoint representor",
                    (l.ep_set_device_rep)(ep, dev.rep),
                )?;
            }
            check(
                d,
                "setting the message size",
                (l.ep_set_max_msg_size)(ep, msg),
            )?;
            check(
                d,
                "setting the send queue size",
                (l.ep_set_send_queue_size)(ep, sq),
            )?;
            check(
                d,
                "setting the receive queue size",
                (l.ep_set_recv_queue_size)(ep, rq),
            )?;
        }
        let cname = CString::new(name).map_err(|_| "bad service name")?;
        let mut peer = ptr::null_mut();
        // SAFETY: valid endpoint, NUL-terminated name, out-pointer.
        unsafe {
            match role {
                Role::Dpu => check(
                    d,
                    &format!("listening on service {name:?}"),
                    (l.ep_listen)(ep, cname.as_ptr()),
                )?,
                Role::Host => check(
                    d,
                    &format!("connecting to service {name:?}"),
                    (l.ep_connect)(ep, cname.as_ptr(), &mut peer),
                )?,
            }
        }
        let mut m = 0u16;
        // SAFETY: valid endpoint and out-pointer.
        check(d, "reading the message size", unsafe {
            (l.ep_get_max_msg_size)(ep, &mut m)
        })?;
        me.max_msg = u32::from(m);
        if me.max_msg < crate::channel::MIN_MAX_MSG {
            return Err(format!(
                "the device's message size ({} bytes) is below the {} the relay needs",
                me.max_msg,
                crate::channel::MIN_MAX_MSG
            ));
        }
        let (mut sfd, mut rfd) = (-1, -1);
        // SAFETY: the endpoint is active, so its event channels exist.
        check(d, "getting the event channels", unsafe {
            (l.ep_get_event_channel)(ep, &mut sfd, &mut rfd)
        })?;
        let reg =
            |fd| Async::new(EventFd(fd)).map_err(|e| format!("watching DOCA event fd {fd}: {e}"));
        me.send_ev = Some(reg(sfd)?);
        me.recv_ev = Some(reg(rfd)?);
        Ok((me, Peer(peer)))
    }

    fn lib(&self) -> &CcLib {
        &self.cc
    }

    /// Host: whether the connection to the service is up; `Ok(false)` while in progress.
    pub fn connected(&self, peer: Peer) -> Result<bool, String> {
        // SAFETY: `peer` came from `ep_connect` on this endpoint.
        match unsafe { (self.lib().peer_addr_update_info)(peer.0) } {
            DocaError::SUCCESS => Ok(true),
            DocaError::CONNECTION_INPROGRESS => Ok(false),
            e => Err(format!(
                "connecting to the DPU service: {}",
                self.dev.lib.describe(e)
            )),
        }
    }

    /// Sends one message, waiting while the send queue is full.
    pub async fn send(&self, peer: Peer, msg: &[u8]) -> Result<(), DocaError> {
        let l = self.lib();
        // SAFETY: valid endpoint, peer and buffer for the duration of the call.
        let try_send =
            || unsafe { (l.ep_sendto)(self.ep, msg.as_ptr().cast(), msg.len(), 0, peer.0) };
        loop {
            match try_send() {
                DocaError::AGAIN => {}
                r => return r.ok(),
            }
            // SAFETY: valid endpoint.
            unsafe { (l.ep_arm_send)(self.ep) };
            match try_send() {
                DocaError::AGAIN => {}
                r => return r.ok(),
            }
            let ev = self.send_ev.as_ref().expect("set while active");
            ev.readable().await.map_err(|_| DocaError(1))?;
        }
    }

    /// Receives one message into `buf`; returns its length and sender.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<(usize, Peer), (DocaError, Peer)> {
        let l = self.lib();
        let mut try_recv = || {
            let mut len = buf.len();
            let mut from = ptr::null_mut();
            // SAFETY: valid endpoint, buffer of `len` bytes, out-pointers.
            let r = unsafe {
                (l.ep_recvfrom)(self.ep, buf.as_mut_ptr().cast(), &mut len, 0, &mut from)
            };
            (r, len, Peer(from))
        };
        loop {
            match try_recv() {
                (DocaError::AGAIN, ..) => {}
                (DocaError::SUCCESS, n, from) => return Ok((n, from)),
                (e, _, from) => return Err((e, from)),
            }
            // SAFETY: valid endpoint.
            unsafe { (l.ep_arm_recv)(self.ep) };
            match try_recv() {
                (DocaError::AGAIN, ..) => {}
                (DocaError::SUCCESS, n, from) => return Ok((n, from)),
                (e, _, from) => return Err((e, from)),
            }
            let ev = self.recv_ev.as_ref().expect("set while active");
            ev.readable()
                .await
                .map_err(|_| (DocaError(1), Peer(ptr::null_mut())))?;
        }
    }

    /// The user data of a peer (0 for a peer never seen before).
    pub fn user_data(&self, peer: Peer) -> u64 {
        let mut v = 0;
        // SAFETY: `peer` was returned by this endpoint.
        unsafe { (self.lib().peer_get_user_data)(peer.0, &mut v) };
        v
    }

    /// Tags a peer so that later messages from it are recognised.
    pub fn set_user_data(&self, peer: Peer, v: u64) {
        // SAFETY: `peer` was returned by this endpoint.
        unsafe { (self.lib().peer_set_user_data)(peer.0, v) };
    }

    /// Drops the connection to `peer`.
    pub fn disconnect(&self, peer: Peer) {
        // SAFETY: `peer` was returned by this endpoint.
        unsafe { (self.lib().ep_disconnect)(self.ep, peer.0) };
    }

    /// Describes a DOCA error code with the library's text.
    pub fn describe(&self, e: DocaError) -> String {
        self.dev.lib.describe(e)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Unregister the event fds before the endpoint closes them.
        self.send_ev.take();
        self.recv_ev.take();
        // SAFETY: created by us, destroyed once; destroy includes disconnect.
        unsafe { (self.cc.ep_destroy)(self.ep) };
    }
}

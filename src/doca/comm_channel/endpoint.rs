//! The Comm Channel endpoint: the one owner of the `doca_comm_channel_ep_t` pointer and of the
//! peer addresses DOCA hands out on it. Every DOCA call the thread makes is a method here.

use super::ffi::{Addr, CcLib, Ep};
use crate::config::Role;
use crate::doca::device::RawDev;
use crate::doca::error::{Described, Failure, Step};
use crate::doca::ffi::{check, Descr, DevInfo, DocaError};
use std::ffi::CStr;
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::{self, NonNull};

/// A peer address DOCA handed out on the endpoint: the service's on the host, a host's on the
/// DPU. Made only here, from what `ep_connect` or `ep_recvfrom` returned, so it is one DOCA
/// holds; not `Clone`, so the thread keeps no copy of one it has disconnected.
#[derive(PartialEq)]
pub(super) struct Peer(NonNull<Addr>);

impl Peer {
    fn raw(&self) -> *mut Addr {
        self.0.as_ptr()
    }
}

/// What one receive returned.
pub(super) struct Received {
    /// `SUCCESS`, `AGAIN` (nothing waiting), or the error.
    pub status: DocaError,
    /// Bytes written to the buffer.
    pub len: usize,
    /// Who sent it (or whose connection failed); DOCA may name no one on an error.
    pub from: Option<Peer>,
}

/// The device limits the endpoint is sized from (DOCA's maxima, capped by what is asked for).
pub(super) struct Sizes {
    /// Message size asked for.
    pub msg: u32,
    /// Send and receive queue depth asked for.
    pub queue: u32,
}

/// The Comm Channel endpoint of one thread.
// SAFETY: `ep` comes from `ep_create` and is destroyed only in `Drop`, once; `l` is borrowed, so
// the functions outlive it. The raw pointer keeps the type on the thread that created it (it is
// neither `Send` nor `Sync`), which is the only thread that calls DOCA on it, as DOCA requires
// (the endpoint is not thread-safe). The device it is set to stays open for the thread's whole
// life (see `RawDev`). `fds` are the endpoint's event fds, which DOCA keeps open until
// `ep_destroy`, and which are lent out only for as long as the endpoint is borrowed.
pub(super) struct Endpoint<'a> {
    l: &'a CcLib,
    descr: Descr,
    ep: *mut Ep,
    /// The event fds, once each even when DOCA hands out the same fd for both.
    fds: Vec<RawFd>,
}

impl<'a> Endpoint<'a> {
    /// Creates the endpoint; `descr` describes the library's errors.
    pub(super) fn create(l: &'a CcLib, descr: Descr) -> Result<Self, Failure> {
        let mut ep = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        let r = unsafe { (l.ep_create)(&mut ep) };
        check(descr, "creating the Comm Channel endpoint", r)?;
        Ok(Endpoint {
            l,
            descr,
            ep,
            fds: Vec::new(),
        })
    }

    /// The library's description of `e`, with its number.
    pub(super) fn describe(&self, e: DocaError) -> Described {
        Described::new(self.descr, e)
    }

    fn check(&self, step: impl Into<Step>, r: DocaError) -> Result<(), Failure> {
        check(self.descr, step, r)
    }

    /// Sets the endpoint's device (and on the DPU the representor), its message size and its
    /// queue depths, each capped by what the device allows.
    pub(super) fn configure(&self, dev: &RawDev, role: Role, want: Sizes) -> Result<(), Failure> {
        let (l, ep) = (self.l, self.ep);
        // SAFETY: the device is open (see `RawDev`).
        let info = unsafe { (l.dev_as_devinfo)(dev.dev()) };
        let cap = |f: unsafe extern "C" fn(*mut DevInfo, *mut u32) -> DocaError, want: u32| {
            let mut max = 0u32;
            // SAFETY: the device's info and an out-pointer.
            let v = match unsafe { f(info, &mut max) } {
                DocaError::SUCCESS if max > 0 => want.min(max),
                _ => want,
            };
            v.min(u16::MAX as u32) as u16
        };
        let msg = cap(l.get_max_message_size, want.msg);
        let (sq, rq) = (
            cap(l.get_max_send_queue_size, want.queue),
            cap(l.get_max_recv_queue_size, want.queue),
        );
        // SAFETY: our fresh endpoint and the open device.
        let r = unsafe { (l.ep_set_device)(ep, dev.dev()) };
        self.check("setting the endpoint device", r)?;
        if role == Role::Dpu {
            // SAFETY: our endpoint and the open representor.
            let r = unsafe { (l.ep_set_device_rep)(ep, dev.rep()) };
            self.check("setting the endpoint representor", r)?;
        }
        // SAFETY: our endpoint (the three calls below take a size by value).
        let r = unsafe { (l.ep_set_max_msg_size)(ep, msg) };
        self.check("setting the message size", r)?;
        // SAFETY: as above.
        let r = unsafe { (l.ep_set_send_queue_size)(ep, sq) };
        self.check("setting the send queue size", r)?;
        // SAFETY: as above.
        let r = unsafe { (l.ep_set_recv_queue_size)(ep, rq) };
        self.check("setting the receive queue size", r)
    }

    /// DPU: listens for hosts on the service `name`.
    pub(super) fn listen(&self, name: &CStr) -> Result<(), Failure> {
        // SAFETY: our configured endpoint and a NUL-terminated name.
        let r = unsafe { (self.l.ep_listen)(self.ep, name.as_ptr()) };
        self.check(Step::Listening(name.to_string_lossy().into()), r)
    }

    /// Host: starts connecting to the service `name` (see [`Endpoint::connected`]).
    pub(super) fn connect(&self, name: &CStr) -> Result<Peer, Failure> {
        let mut peer = ptr::null_mut();
        // SAFETY: our configured endpoint, a NUL-terminated name and an out-pointer.
        let r = unsafe { (self.l.ep_connect)(self.ep, name.as_ptr(), &mut peer) };
        let service: String = name.to_string_lossy().into();
        self.check(Step::Connecting(service.clone()), r)?;
        NonNull::new(peer)
            .map(Peer)
            .ok_or(Failure::NoPeer { service })
    }

    /// Host: whether the connection `peer` has settled (`SUCCESS`), is still being made
    /// (`CONNECTION_INPROGRESS`) or failed.
    pub(super) fn connected(&self, peer: &Peer) -> DocaError {
        // SAFETY: a peer of our endpoint (see `Peer`).
        unsafe { (self.l.peer_addr_update_info)(peer.raw()) }
    }

    /// The message size in force, once listening or connecting.
    pub(super) fn max_msg_size(&self) -> Result<u16, Failure> {
        let mut m = 0u16;
        // SAFETY: our endpoint and an out-pointer.
        let r = unsafe { (self.l.ep_get_max_msg_size)(self.ep, &mut m) };
        self.check("reading the message size", r).map(|()| m)
    }

    /// Takes the endpoint's event channels (it is active, so they exist).
    pub(super) fn open_event_channels(&mut self) -> Result<(), Failure> {
        let (mut sfd, mut rfd) = (-1, -1);
        // SAFETY: our active endpoint and out-pointers.
        let r = unsafe { (self.l.ep_get_event_channel)(self.ep, &mut sfd, &mut rfd) };
        self.check("getting the event channels", r)?;
        self.fds = vec![rfd];
        if sfd != rfd {
            self.fds.push(sfd);
        }
        Ok(())
    }

    /// The event fds, to poll as they are: they belong to the endpoint and are never
    /// registered elsewhere, changed or closed.
    pub(super) fn event_fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.fds.iter().map(|&fd| {
            // SAFETY: DOCA keeps the event fds open until `ep_destroy`, in `Drop`, and the
            // borrow ends before it (see `Endpoint`).
            unsafe { BorrowedFd::borrow_raw(fd) }
        })
    }

    /// Arms the receive event channel.
    pub(super) fn arm_recv(&self) -> Result<(), Failure> {
        // SAFETY: our active endpoint.
        let r = unsafe { (self.l.ep_arm_recv)(self.ep) };
        self.check("arming the receive event channel", r)
    }

    /// Arms the send event channel.
    pub(super) fn arm_send(&self) -> Result<(), Failure> {
        // SAFETY: our active endpoint.
        let r = unsafe { (self.l.ep_arm_send)(self.ep) };
        self.check("arming the send event channel", r)
    }

    /// Takes one received message into `buf`, without waiting.
    pub(super) fn recv(&self, buf: &mut [u8]) -> Received {
        let mut len = buf.len();
        let mut from = ptr::null_mut();
        // SAFETY: our endpoint, a buffer of `len` bytes and out-pointers.
        let status = unsafe {
            (self.l.ep_recvfrom)(self.ep, buf.as_mut_ptr().cast(), &mut len, 0, &mut from)
        };
        Received {
            status,
            len,
            from: NonNull::new(from).map(Peer),
        }
    }

    /// Hands `msg` to the endpoint for `peer`, without waiting (`AGAIN`: the queue is full).
    pub(super) fn send(&self, peer: &Peer, msg: &[u8]) -> DocaError {
        // SAFETY: our endpoint and peer; DOCA copies the buffer during the call.
        unsafe { (self.l.ep_sendto)(self.ep, msg.as_ptr().cast(), msg.len(), 0, peer.raw()) }
    }

    /// The value [`Endpoint::set_user_data`] left on `peer` (0 for a new one).
    pub(super) fn user_data(&self, peer: &Peer) -> u64 {
        let mut v = 0;
        // SAFETY: a peer of our endpoint and an out-pointer.
        unsafe { (self.l.peer_get_user_data)(peer.raw(), &mut v) };
        v
    }

    /// Marks `peer` with `v`.
    pub(super) fn set_user_data(&self, peer: &Peer, v: u64) {
        // SAFETY: a peer of our endpoint.
        unsafe { (self.l.peer_set_user_data)(peer.raw(), v) };
    }

    /// Disconnects `peer`. DOCA may block here until the peer's resources are freed.
    pub(super) fn disconnect(&self, peer: Peer) {
        // SAFETY: our endpoint and one of its peers, given up here.
        unsafe { (self.l.ep_disconnect)(self.ep, peer.raw()) };
    }

    /// DPU: what DOCA says of the service's health (`CONNECTION_RESET`: unrecoverable), where
    /// the library has the call.
    pub(super) fn service_state(&self) -> Option<DocaError> {
        let update = self.l.update_service_state?;
        // SAFETY: our listening endpoint.
        Some(unsafe { update(self.ep) })
    }
}

impl Drop for Endpoint<'_> {
    /// Destroys the endpoint, which disconnects every peer and may block for as long as DOCA
    /// takes.
    fn drop(&mut self) {
        // SAFETY: created by `create`, destroyed only here (see `Endpoint`); the event fds are
        // no longer borrowed.
        unsafe { (self.l.ep_destroy)(self.ep) };
    }
}

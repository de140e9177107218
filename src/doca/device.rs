//! Opening the DOCA device (and on the DPU the representor) by PCI address, shared by the
//! Comm Channel and Comch backends.

use super::error::Failure;
pub use super::ffi::DevLib;
use super::ffi::{self, check, Dev, DevRep, DocaError};
use crate::config::{Config, PciAddr, Role};
use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::rc::Rc;

/// The opened DOCA device (and representor on the DPU). Closed on drop, after every endpoint.
// SAFETY: `dev` and `rep` come from `dev_open` and `dev_rep_open` (or are null: the
// representor off the DPU, either while opening) and are closed only in `Drop`, once,
// representor first. The raw pointers keep the type off other threads; a worker thread gets
// them as a [`RawDev`], whose `Channel` keeps the device open until the thread has ended.
pub struct Device {
    /// The common library the device came from.
    pub lib: DevLib,

    dev: *mut Dev,
    rep: *mut DevRep,
}

/// The device pointers, lent to one worker thread.
// SAFETY: made only by `Device::raw`. The `Channel` that runs the thread holds the device until
// the thread has ended (and leaks it if the thread outlives the channel), so both pointers stay
// valid for as long as the thread can use them. `rep` is null off the DPU.
pub(crate) struct RawDev {
    dev: *mut Dev,
    rep: *mut DevRep,
}
// SAFETY: moved once, to the worker thread, the only thread that uses the pointers from then on.
unsafe impl Send for RawDev {}

impl RawDev {
    /// The device, open for the worker thread's whole life.
    pub(crate) fn dev(&self) -> *mut Dev {
        self.dev
    }

    /// The representor (DPU), open for the thread's whole life; null on the host.
    pub(crate) fn rep(&self) -> *mut DevRep {
        self.rep
    }
}

impl Device {
    /// Opens the device at `-p` (and on the DPU the representor at `-r`) through the
    /// `libdoca_common` at `common` (the one the channel library belongs with).
    pub fn open(cfg: &Config, common: &str) -> Result<Rc<Device>, Failure> {
        let lib = DevLib::load(common)?;
        let pci = cfg.pci_addr.as_ref().ok_or(Failure::NoPciAddr)?;
        let mut device = Device {
            lib,
            dev: ptr::null_mut(),
            rep: ptr::null_mut(),
        };
        device.dev = device.open_dev(pci)?;
        if cfg.role == Role::Dpu {
            let rep = cfg.rep_pci.as_ref().ok_or(Failure::NoRepPci)?;
            device.rep = device.open_rep(rep)?;
        }
        log::info!(
            "DOCA device {} opened ({}, device API names of DOCA {})",
            pci.0,
            device.lib.file,
            device.lib.generation
        );
        Ok(Rc::new(device))
    }

    pub(crate) fn raw(&self) -> RawDev {
        RawDev {
            dev: self.dev,
            rep: self.rep,
        }
    }

    fn open_dev(&self, pci: &PciAddr) -> Result<*mut Dev, Failure> {
        let l = &self.lib;
        let want = CString::new(pci.0.as_str()).map_err(|_| Failure::BadPciAddr)?;
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        // SAFETY: out-pointers; the list is destroyed below.
        let r = unsafe { (l.devinfo_list_create)(&mut list, &mut n) };
        check(l.error_descr, "listing DOCA devices", r)?;
        // SAFETY: the list DOCA just made, and its length.
        let found = match unsafe { find_pci(list, n, l.devinfo_is_equal_pci, &want) } {
            None => Err(Failure::NoDevice(pci.clone())),
            Some(info) => {
                let mut dev = ptr::null_mut();
                // SAFETY: an entry of the live list; the opened device outlives the list.
                let r = unsafe { (l.dev_open)(info, &mut dev) };
                check(l.error_descr, "opening the DOCA device", r).map(|()| dev)
            }
        };
        // SAFETY: the list from `devinfo_list_create`, destroyed once.
        unsafe { (l.devinfo_list_destroy)(list) };
        found
    }

    fn open_rep(&self, pci: &PciAddr) -> Result<*mut DevRep, Failure> {
        let l = &self.lib;
        let want = CString::new(pci.0.as_str()).map_err(|_| Failure::BadPciAddr)?;
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        // SAFETY: `self.dev` is open; out-pointers; the list is destroyed below.
        let r = unsafe { (l.rep_list_create)(self.dev, ffi::REP_FILTER_NET, &mut list, &mut n) };
        check(
            l.error_descr,
            "listing DOCA representors (is this the DPU?)",
            r,
        )?;
        // SAFETY: the list DOCA just made, and its length.
        let found = match unsafe { find_pci(list, n, l.rep_is_equal_pci, &want) } {
            None => Err(Failure::NoRepresentor(pci.clone())),
            Some(info) => {
                let mut rep = ptr::null_mut();
                // SAFETY: an entry of the live list; the representor outlives the list.
                let r = unsafe { (l.dev_rep_open)(info, &mut rep) };
                check(l.error_descr, "opening the DOCA representor", r).map(|()| rep)
            }
        };
        // SAFETY: the list from `rep_list_create`, destroyed once.
        unsafe { (l.rep_list_destroy)(list) };
        found
    }
}

/// The first entry of a DOCA device or representor list whose PCI address is `want`.
///
/// # Safety
/// `list` holds `n` valid entries (DOCA's list, not yet destroyed), or `n` is 0.
unsafe fn find_pci<T>(
    list: *mut *mut T,
    n: u32,
    is_equal: unsafe extern "C" fn(*const T, *const c_char, *mut u8) -> DocaError,
    want: &CStr,
) -> Option<*mut T> {
    if list.is_null() || n == 0 {
        return None;
    }
    // SAFETY: `n` valid entries (the caller's promise), read while the list lives.
    let entries = unsafe { std::slice::from_raw_parts(list, n as usize) };
    entries.iter().copied().find(|&info| {
        let mut eq = 0u8;
        // SAFETY: a valid entry, a NUL-terminated string and an out-pointer.
        let r = unsafe { is_equal(info, want.as_ptr(), &mut eq) };
        r == DocaError::SUCCESS && eq != 0
    })
}

impl Drop for Device {
    fn drop(&mut self) {
        // The representor before the device (the documented order).
        if !self.rep.is_null() {
            // SAFETY: opened by `open_rep`, closed only here (see `Device`).
            unsafe { (self.lib.dev_rep_close)(self.rep) };
        }
        if !self.dev.is_null() {
            // SAFETY: opened by `open_dev`, closed only here, after its representor.
            unsafe { (self.lib.dev_close)(self.dev) };
        }
    }
}

//! Opening the DOCA device (and on the DPU the representor) by PCI address, shared by the
//! Comm Channel and Comch backends.

pub use super::ffi::DevLib;
use super::ffi::{self, check, Dev, DevRep, DocaError};
use crate::config::{Config, PciAddr, Role};
use std::ffi::CString;
use std::ptr;
use std::rc::Rc;

/// The opened DOCA device (and representor on the DPU). Closed on drop, after every endpoint.
pub struct Device {
    /// The common library the device came from.
    pub lib: DevLib,

    pub(crate) dev: *mut Dev,
    pub(crate) rep: *mut DevRep,
}

/// The device pointers, for a worker thread. The channel that owns the thread keeps the
/// [`Device`] open until the thread has ended.
pub(crate) struct RawDev(pub *mut Dev, pub *mut DevRep);
// SAFETY: the pointers are used only by the one worker thread, and the device outlives it.
unsafe impl Send for RawDev {}

impl Device {
    /// Opens the device at `-p` (and on the DPU the representor at `-r`) through the
    /// `libdoca_common` at `common` (the one the channel library belongs with).
    pub fn open(cfg: &Config, common: &str) -> Result<Rc<Device>, String> {
        let lib = DevLib::load(common)?;
        let pci = cfg
            .pci_addr
            .as_ref()
            .ok_or("--pci-addr is required with --channel doca")?;
        let mut device = Device {
            lib,
            dev: ptr::null_mut(),
            rep: ptr::null_mut(),
        };
        device.dev = device.open_dev(pci)?;
        if cfg.role == Role::Dpu {
            let rep = cfg
                .rep_pci
                .as_ref()
                .ok_or("--rep-pci is required on the DPU with --channel doca")?;
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
        RawDev(self.dev, self.rep)
    }

    fn open_dev(&self, pci: &PciAddr) -> Result<*mut Dev, String> {
        let l = &self.lib;
        let want = CString::new(pci.0.as_str()).map_err(|_| "bad PCI address")?;
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        // SAFETY: out-pointers are valid; the list is destroyed below.
        check(l.error_descr, "listing DOCA devices", unsafe {
            (l.devinfo_list_create)(&mut list, &mut n)
        })?;
        let mut found = Err(format!(
            "no DOCA device at PCI address {} (--pci-addr)",
            pci.0
        ));
        for i in 0..n as usize {
            // SAFETY: `list` holds `n` valid entries until destroyed.
            let info = unsafe { *list.add(i) };
            let mut eq = 0u8;
            // SAFETY: valid devinfo and NUL-terminated string.
            if unsafe { (l.devinfo_is_equal_pci)(info, want.as_ptr(), &mut eq) }
                == DocaError::SUCCESS
                && eq != 0
            {
                let mut dev = ptr::null_mut();
                // SAFETY: `info` is valid; the opened device outlives the list.
                found = check(l.error_descr, "opening the DOCA device", unsafe {
                    (l.dev_open)(info, &mut dev)
                })
                .map(|_| dev);
                break;
            }
        }
        // SAFETY: `list` came from list_create.
        unsafe { (l.devinfo_list_destroy)(list) };
        found
    }

    fn open_rep(&self, pci: &PciAddr) -> Result<*mut DevRep, String> {
        let l = &self.lib;
        let want = CString::new(pci.0.as_str()).map_err(|_| "bad PCI address")?;
        let (mut list, mut n) = (ptr::null_mut(), 0u32);
        // SAFETY: `self.dev` is open; out-pointers valid.
        check(
            l.error_descr,
            "listing DOCA representors (is this the DPU?)",
            unsafe { (l.rep_list_create)(self.dev, ffi::REP_FILTER_NET, &mut list, &mut n) },
        )?;
        let mut found = Err(format!(
            "no DOCA representor at PCI address {} (--rep-pci)",
            pci.0
        ));
        for i in 0..n as usize {
            // SAFETY: `list` holds `n` valid entries until destroyed.
            let info = unsafe { *list.add(i) };
            let mut eq = 0u8;
            // SAFETY: valid rep info and NUL-terminated string.
            if unsafe { (l.rep_is_equal_pci)(info, want.as_ptr(), &mut eq) } == DocaError::SUCCESS
                && eq != 0
            {
                let mut rep = ptr::null_mut();
                // SAFETY: `info` is valid; the representor outlives the list.
                found = check(l.error_descr, "opening the DOCA representor", unsafe {
                    (l.dev_rep_open)(info, &mut rep)
                })
                .map(|_| rep);
                break;
            }
        }
        // SAFETY: `list` came from rep_list_create.
        unsafe { (l.rep_list_destroy)(list) };
        found
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: opened by us, closed once, representor before device (the documented order).
        unsafe {
            if !self.rep.is_null() {
                (self.lib.dev_rep_close)(self.rep);
            }
            if !self.dev.is_null() {
                (self.lib.dev_close)(self.dev);
            }
        }
    }
}

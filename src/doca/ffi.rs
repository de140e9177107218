//! Hand-written declarations of what both DOCA backends share: the error code, the device
//! look-up of `libdoca_common`, and the loading of the libraries (the Comm Channel's own
//! functions are in `comm_channel/ffi.rs`, Comch's in `comch/ffi.rs`).
//!
//! Written from the published function signatures; no NVIDIA header is used. Device lookup
//! functions were renamed in DOCA 2.5 (2.2 has the old names, 2.5 and later the new ones), so
//! each is looked up under both names. DOCA 1.5 and 2.0 are not supported: their libraries are
//! version 1 and their device lookup compares PCI addresses as structs.

use super::error::{Described, Failure, Step};
use libloading::Library;
use std::ffi::{c_char, c_int, CStr};
use std::fmt;

/// A `doca_error_t`. A newtype over the C integer, since the library may return codes that a
/// Rust enum would not know (which would be undefined behaviour).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocaError(pub c_int);

impl DocaError {
    /// `DOCA_SUCCESS`
    pub const SUCCESS: Self = Self(0);
    /// `DOCA_ERROR_AGAIN`: queue empty (receive) or full (send).
    pub const AGAIN: Self = Self(5);
    /// `DOCA_ERROR_INVALID_VALUE`
    pub const INVALID_VALUE: Self = Self(6);
    /// `DOCA_ERROR_CONNECTION_RESET`: the peer failed and must be disconnected.
    pub const CONNECTION_RESET: Self = Self(11);
    /// `DOCA_ERROR_CONNECTION_ABORTED`: connecting failed.
    pub const CONNECTION_ABORTED: Self = Self(12);
    /// `DOCA_ERROR_CONNECTION_INPROGRESS`: connecting, ask again.
    pub const CONNECTION_INPROGRESS: Self = Self(13);
    /// `DOCA_ERROR_NOT_CONNECTED`
    pub const NOT_CONNECTED: Self = Self(14);
    /// `DOCA_ERROR_NOT_FOUND`
    pub const NOT_FOUND: Self = Self(16);

    /// `Ok(())` for success, else the error.
    pub fn ok(self) -> Result<(), DocaError> {
        if self == Self::SUCCESS {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for DocaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DOCA error {}", self.0)
    }
}

/// Declares opaque C structs that are only ever used behind pointers.
macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident),*) => {$(
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
        }
    )*};
}
pub(crate) use opaque;

/// The DOCA version the common library reports through `doca_version_runtime`, when it
/// exports it (`doca_version` is an inline function of the 2.x headers, never exported).
pub(crate) fn runtime_version(common: &Library) -> Option<String> {
    let f: unsafe extern "C" fn() -> *const c_char =
        sym(common, "", &["doca_version_runtime"]).ok()?;
    // SAFETY: the function takes nothing and returns a static version string.
    let p = unsafe { f() };
    // SAFETY: non-NULL results are NUL-terminated static strings.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// A library's `doca_error_get_descr` (DOCA 2.2: `doca_get_error_string`).
pub(crate) type Descr = unsafe extern "C" fn(DocaError) -> *const c_char;

/// The one DOCA error check (device code and both backends): `Ok(())` for success, else a
/// [`Failure::Call`] naming the step and the library's description of the error, plus a hint
/// when the usual cause is the service's environment rather than the relay.
pub(crate) fn check(descr: Descr, step: impl Into<Step>, r: DocaError) -> Result<(), Failure> {
    r.ok().map_err(|e| Failure::Call {
        step: step.into(),
        error: Described::new(descr, e),
        hint: super::hints::for_error(e),
    })
}

opaque!(
    /// `struct doca_devinfo`
    DevInfo,
    /// `struct doca_devinfo_rep`
    DevInfoRep,
    /// `struct doca_dev`
    Dev,
    /// `struct doca_dev_rep`
    DevRep
);

/// `DOCA_DEV_REP_FILTER_NET` (2 in every version).
pub const REP_FILTER_NET: c_int = 2;

type Err = DocaError;

/// Device lookup and error strings from `libdoca_common`, shared by both DOCA backends.
#[allow(missing_docs)]
pub struct DevLib {
    pub devinfo_list_create: unsafe extern "C" fn(*mut *mut *mut DevInfo, *mut u32) -> Err,
    pub devinfo_list_destroy: unsafe extern "C" fn(*mut *mut DevInfo) -> Err,
    pub devinfo_is_equal_pci: unsafe extern "C" fn(*const DevInfo, *const c_char, *mut u8) -> Err,
    pub dev_open: unsafe extern "C" fn(*mut DevInfo, *mut *mut Dev) -> Err,
    pub dev_close: unsafe extern "C" fn(*mut Dev) -> Err,
    pub dev_as_devinfo: unsafe extern "C" fn(*const Dev) -> *mut DevInfo,
    pub rep_list_create:
        unsafe extern "C" fn(*mut Dev, c_int, *mut *mut *mut DevInfoRep, *mut u32) -> Err,
    pub rep_list_destroy: unsafe extern "C" fn(*mut *mut DevInfoRep) -> Err,
    pub rep_is_equal_pci: unsafe extern "C" fn(*const DevInfoRep, *const c_char, *mut u8) -> Err,
    pub dev_rep_open: unsafe extern "C" fn(*mut DevInfoRep, *mut *mut DevRep) -> Err,
    pub dev_rep_close: unsafe extern "C" fn(*mut DevRep) -> Err,
    pub error_descr: Descr,
    /// Which naming generation the library uses: "2.2" or "2.5+".
    pub generation: &'static str,
    /// The file that was loaded.
    pub file: String,
    /// The DOCA version the library reports, if it says.
    pub version: Option<String>,
    _lib: Library,
}

/// SONAMEs of the common library, newest first (DOCA 3.x, then 2.x).
pub const COMMON_LIBS: &[&str] = &["libdoca_common.so.3", "libdoca_common.so.2"];
/// Loads the first of `names` that the dynamic loader or DOCA's install directory has.
/// Returns the library and the name it was found under.
pub fn open(names: &[&str]) -> Result<(Library, String), Failure> {
    let mut first_err = None;
    for name in names {
        let dirs = [
            String::new(),
            format!(
                "/opt/mellanox/doca/lib/{}-linux-gnu/",
                std::env::consts::ARCH
            ),
            "/opt/mellanox/doca/lib64/".to_string(),
        ];
        for dir in dirs {
            let path = format!("{dir}{name}");
            // SAFETY: loading a DOCA library runs its initialisers, as linking would.
            match unsafe { Library::new(&path) } {
                Ok(lib) => return Ok((lib, path)),
                Err(e) => {
                    first_err.get_or_insert(e.to_string());
                }
            }
        }
    }
    Err(Failure::Load {
        file: names.join(" or "),
        reason: first_err.unwrap_or_default(),
    })
}

/// The file of a mapped library whose name starts with `prefix`, from `/proc/self/maps`.
fn mapped(prefix: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            std::path::Path::new(p)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(prefix))
        })
        .map(str::to_string)
}

/// Loads the `libdoca_common` that `channel` (already loaded) belongs with: the one its
/// dynamic dependencies pulled in, else one in the same directory. Two DOCA versions installed
/// side by side are never mixed.
pub fn open_common_of(channel: &str) -> Result<(Library, String), Failure> {
    let dir = mapped(
        std::path::Path::new(channel)
            .file_name()
            .map_or(channel.into(), |f| f.to_string_lossy())
            .split(".so")
            .next()
            .unwrap_or(channel),
    )
    .and_then(|p| {
        std::path::Path::new(&p)
            .parent()
            .map(|d| d.display().to_string())
    });
    let candidates = mapped("libdoca_common.so").into_iter().chain(
        dir.iter()
            .flat_map(|d| COMMON_LIBS.iter().map(move |n| format!("{d}/{n}"))),
    );
    for path in candidates {
        // SAFETY: as in `open`.
        if let Ok(lib) = unsafe { Library::new(&path) } {
            return Ok((lib, path));
        }
    }
    Err(Failure::NoCommon {
        channel: channel.to_string(),
        dir,
    })
}

/// Copies one function pointer out of `lib`, trying each name in turn.
pub(crate) fn sym<T: Copy>(
    lib: &Library,
    lib_name: &str,
    names: &'static [&'static str],
) -> Result<T, Failure> {
    for name in names {
        let cname = format!("{name}\0");
        // SAFETY: `T` is the hand-written signature of this DOCA function; the pointer is used
        // only while `Lib` keeps the library loaded.
        if let Ok(s) = unsafe { lib.get::<T>(cname.as_bytes()) } {
            return Ok(*s);
        }
    }
    Err(Failure::MissingSymbol {
        file: lib_name.to_string(),
        names,
    })
}

/// Resolves one function from `$lib` (the file `$file`) under the first name it has, or
/// returns the error naming them all.
macro_rules! get {
    ($lib:expr, $file:expr, $($name:literal),+) => {
        $crate::doca::ffi::sym(&$lib, &$file, &[$($name),+])?
    };
}
pub(crate) use get;

impl DevLib {
    /// Loads `libdoca_common` (the file `path`, the one the channel library belongs with) and
    /// resolves the device and error functions, under either the DOCA 2.2 or the 2.5+ names.
    pub fn load(path: &str) -> Result<DevLib, Failure> {
        // SAFETY: as in `open`.
        let lib = unsafe { Library::new(path) }.map_err(|e| Failure::Load {
            file: path.to_string(),
            reason: e.to_string(),
        })?;
        let file = path.to_string();
        let generation =
            if sym::<unsafe extern "C" fn()>(&lib, &file, &["doca_devinfo_create_list"]).is_ok() {
                "2.5+"
            } else {
                "2.2"
            };
        Ok(DevLib {
            devinfo_list_create: get!(
                lib,
                file,
                "doca_devinfo_create_list",
                "doca_devinfo_list_create"
            ),
            devinfo_list_destroy: get!(
                lib,
                file,
                "doca_devinfo_destroy_list",
                "doca_devinfo_list_destroy"
            ),
            devinfo_is_equal_pci: get!(
                lib,
                file,
                "doca_devinfo_is_equal_pci_addr",
                "doca_devinfo_get_is_pci_addr_equal"
            ),
            dev_open: get!(lib, file, "doca_dev_open"),
            dev_close: get!(lib, file, "doca_dev_close"),
            dev_as_devinfo: get!(lib, file, "doca_dev_as_devinfo"),
            rep_list_create: get!(
                lib,
                file,
                "doca_devinfo_rep_create_list",
                "doca_devinfo_rep_list_create"
            ),
            rep_list_destroy: get!(
                lib,
                file,
                "doca_devinfo_rep_destroy_list",
                "doca_devinfo_rep_list_destroy"
            ),
            rep_is_equal_pci: get!(
                lib,
                file,
                "doca_devinfo_rep_is_equal_pci_addr",
                "doca_devinfo_rep_get_is_pci_addr_equal"
            ),
            dev_rep_open: get!(lib, file, "doca_dev_rep_open"),
            dev_rep_close: get!(lib, file, "doca_dev_rep_close"),
            error_descr: get!(lib, file, "doca_error_get_descr", "doca_get_error_string"),
            generation,
            file,
            version: runtime_version(&lib),
            _lib: lib,
        })
    }

    /// The library's description of `e`, with its number.
    pub fn describe(&self, e: DocaError) -> Described {
        Described::new(self.error_descr, e)
    }
}

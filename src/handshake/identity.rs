//! Who this process is in a handshake: an instance id, random per process, that tells a
//! restarted host from the one before it, and a label (host name and process id) for the
//! peer's log lines.

use crate::wire::INSTANCE_LEN;
use std::sync::OnceLock;

struct Me {
    instance: [u8; INSTANCE_LEN],
    label: String,
}

fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        let mut instance = [0u8; INSTANCE_LEN];
        // Without randomness two processes could look alike; the pid and time still differ.
        if getrandom::getrandom(&mut instance).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            instance[..8].copy_from_slice(&(t as u64).to_be_bytes());
            instance[8..12].copy_from_slice(&std::process::id().to_be_bytes());
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let host = if host.is_empty() { "unknown" } else { &host };
        Me {
            instance,
            label: format!("{host} pid {}", std::process::id()),
        }
    })
}

/// This process's instance identity, random per process.
pub fn instance() -> [u8; INSTANCE_LEN] {
    me().instance
}

/// This process's label: host name and process id.
pub fn label() -> &'static str {
    &me().label
}

//! Reload without a restart: SIGHUP (`systemctl reload`, through the unit's ExecReload) reads
//! the JSON file again and applies what can change while streams flow: the log level, the
//! client limit, busy polling, the metrics endpoint and the keys. What cannot (role, sockets,
//! channel, service name, security mode, DOCA addresses, log target) is kept and named in one
//! line, so the operator knows a restart is due. A file that fails validation changes nothing
//! and is reported in one error line; `--check` stays the way to test a file first.
//!
//! systemd is told `RELOADING=1` (with `MONOTONIC_USEC`) when a reload starts and `READY=1`
//! when it is over, whatever its outcome: the relay keeps running either way.

use crate::config::{Config, Live};
use crate::mux::Stats;
use async_executor::{LocalExecutor, Task};
use futures_lite::StreamExt;
use std::rc::Rc;

/// How a new file differs from the running configuration.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Settings that change now, as `name old -> new` (a key only as `psk-file`).
    pub live: Vec<String>,
    /// Settings that differ but need a restart, by JSON key.
    pub restart: Vec<&'static str>,
}

/// Compares the running configuration with a newly read one.
pub fn compare(old: &Config, new: &Config) -> Changes {
    let mut c = Changes::default();
    let mut live = |name: &str, a: String, b: String| {
        if a != b {
            c.live.push(format!("{name} {a} -> {b}"));
        }
    };
    live(
        "log-level",
        old.log_level.0.to_string(),
        new.log_level.0.to_string(),
    );
    live(
        "max-clients",
        old.max_clients.to_string(),
        new.max_clients.to_string(),
    );
    live(
        "drain-timeout",
        old.drain_timeout.as_secs().to_string(),
        new.drain_timeout.as_secs().to_string(),
    );
    live(
        "busy-poll",
        old.busy_poll.as_micros().to_string(),
        new.busy_poll.as_micros().to_string(),
    );
    let shown =
        |m: &Option<crate::config::MetricsAddr>| m.as_ref().map_or("off".into(), |a| a.to_string());
    live("metrics", shown(&old.metrics), shown(&new.metrics));
    // Keys change live only within the same security mode (see the restart list below).
    if old.security() == new.security() {
        if old.psk != new.psk {
            c.live.push("psk-file (a new key)".into());
        }
        match (&old.psk_next, &new.psk_next) {
            (a, b) if a == b => {}
            (_, None) => c.live.push("psk-file-next (no second key)".into()),
            (_, Some(_)) => c.live.push("psk-file-next (a new second key)".into()),
        }
    }
    let fixed: [(&'static str, bool); 9] = [
        ("role", old.role != new.role),
        ("socket", old.socket != new.socket),
        ("cc-name", old.cc_name != new.cc_name),
        ("channel", old.channel != new.channel),
        ("pci-addr", old.pci_addr != new.pci_addr),
        ("rep-pci", old.rep_pci != new.rep_pci),
        ("socket-mode", old.socket_mode != new.socket_mode),
        ("log-target", old.log_target != new.log_target),
        (
            "encryption (psk-file present, no-auth, encrypt, no-encrypt, cipher)",
            old.security() != new.security(),
        ),
    ];
    c.restart = fixed.iter().filter(|(_, d)| *d).map(|(n, _)| *n).collect();
    c
}

/// What a reload acts on besides [`Live`].
pub struct Reloader {
    /// The configuration running now: its live settings follow each reload, the rest stays as
    /// started.
    pub running: Config,
    /// The shared live settings.
    pub live: Rc<Live>,
    /// The counters, for the STATUS line systemd gets after a reload.
    pub stats: Rc<Stats>,
    /// The metrics endpoint's task, replaced when its address changes.
    pub metrics: Option<Task<()>>,
    /// Where tasks run.
    pub ex: Rc<LocalExecutor<'static>>,
}

impl Reloader {
    /// Reloads once per item of `requests` (SIGHUP, installed by the caller before anything
    /// is bound, so that a signal sent as soon as the socket exists is not lost), until the
    /// relay stops.
    pub async fn run(mut self, requests: impl futures_lite::Stream<Item = ()>) {
        let mut requests = std::pin::pin!(requests);
        while requests.next().await.is_some() {
            crate::sys::service::reloading();
            self.reload().await;
            crate::sys::service::reloaded(&self.stats.status_line());
        }
    }

    async fn reload(&mut self) {
        let Some(path) = self.running.json.clone() else {
            log::warn!("SIGHUP: started without --json, so there is no file to read again");
            return;
        };
        let new = match crate::config::cli::load_json(&path) {
            Ok((c, _)) => c,
            Err(e) => {
                log::error!("reload failed, the running configuration stays: {e}");
                return;
            }
        };
        let changes = compare(&self.running, &new);
        if new.metrics != self.running.metrics {
            // The new endpoint is bound before the old one goes, so a bad address keeps the
            // old one serving.
            match crate::ops::metrics::start(&new, &self.stats, &self.ex).await {
                Ok(task) => self.metrics = task,
                Err(e) => {
                    log::error!("reload failed, the running configuration stays: {e}");
                    return;
                }
            }
        }
        if let Some(w) = &new.psk_warning {
            log::warn!("{w}");
        }
        log::set_max_level(new.log_level.filter());
        self.live.max_clients.set(new.max_clients);
        self.live.drain_timeout.set(new.drain_timeout);
        for session in self
            .stats
            .sessions
            .borrow()
            .iter()
            .filter_map(|s| s.upgrade())
        {
            session.set_max_streams(new.max_clients);
        }
        // A key that appears or goes changes the security mode: that waits for a restart.
        if new.security() == self.running.security() {
            *self.live.psk.borrow_mut() = new.psk.clone();
            *self.live.psk_next.borrow_mut() = new.psk_next.clone();
        }
        #[cfg(target_os = "linux")]
        if let Err(e) = crate::sys::reactor::set_busy_poll(new.busy_poll) {
            log::warn!("reload: busy polling unchanged: {e}");
        }
        let r = &mut self.running;
        (r.log_level, r.max_clients, r.busy_poll) = (new.log_level, new.max_clients, new.busy_poll);
        r.drain_timeout = new.drain_timeout;
        if new.security() == r.security() {
            (r.psk, r.psk_next) = (new.psk, new.psk_next);
        }
        r.metrics = new.metrics;
        let changed = if changes.live.is_empty() {
            "nothing that applies live changed".to_string()
        } else {
            format!("changed: {}", changes.live.join(", "))
        };
        log::info!("reloaded {}: {changed}", path.display());
        if !changes.restart.is_empty() {
            log::warn!(
                "restart to change: {} (kept as started until then)",
                changes.restart.join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GeneralFlags, ProgramFlags};

    fn cfg(edit: impl FnOnce(&mut ProgramFlags, &mut GeneralFlags)) -> Config {
        let mut p = ProgramFlags {
            socket: Some("/tmp/a.sock".into()),
            cc_name: Some("svc".into()),
            channel: Some("unix:/tmp/c.sock".parse().unwrap()),
            ..Default::default()
        };
        let mut g = GeneralFlags::default();
        edit(&mut p, &mut g);
        Config::validate(g, p, &|n| n.to_string()).unwrap()
    }

    #[test]
    fn live_and_restart_settings_are_told_apart() {
        let old = cfg(|_, _| {});
        assert_eq!(compare(&old, &old), Changes::default());
        let new = cfg(|p, g| {
            p.max_clients = Some(4);
            p.busy_poll = Some(50);
            p.metrics = Some("tcp:127.0.0.1:9".parse().unwrap());
            g.log_level = Some("debug".parse().unwrap());
        });
        let c = compare(&old, &new);
        assert_eq!(
            c.live,
            [
                "log-level 50 -> 60",
                "max-clients 512 -> 4",
                "busy-poll 0 -> 50",
                "metrics off -> tcp:127.0.0.1:9"
            ]
        );
        assert!(c.restart.is_empty(), "{c:?}");
        let moved = cfg(|p, _| {
            p.socket = Some("/tmp/b.sock".into());
            p.cc_name = Some("other".into());
            p.role = Some("dpu".parse().unwrap());
        });
        let c = compare(&old, &moved);
        assert_eq!(c.restart, ["role", "socket", "cc-name"]);
        assert!(c.live.is_empty(), "{c:?}");
    }
}

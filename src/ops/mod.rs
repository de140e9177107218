//! Running the relay and operating it: the run itself, the metrics endpoint, reload, the
//! statistics dump, the service manager's status and watchdog, and `--check`.

pub mod check;
pub(crate) mod metrics;
pub(crate) mod refuse;
pub(crate) mod reload;
pub(crate) mod run;
pub(crate) mod stats_dump;
pub(crate) mod status;

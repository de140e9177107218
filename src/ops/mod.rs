//! Running the relay and operating it: the run itself, the metrics endpoint, reload, the
//! statistics dump, the service manager's status and watchdog, and `--check`.

pub mod check;
pub mod metrics;
pub mod refuse;
pub mod reload;
pub mod run;
pub mod stats_dump;
pub mod status;

//! The command line: DOCA's flags with their meaning kept, plus the relay's own.

use crate::config::{Config, FlagFile, GeneralFlags, ProgramFlags};
use crate::error::Error;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `-h`: print [`USAGE`].
    Help,
    /// `-v`: print the version.
    Version,
    /// Run the relay.
    Run(Box<Config>),
    /// `--check`: validate the configuration and print what would run.
    Check(Box<Config>),
    /// `--gen-key PATH`: write a new random key to PATH.
    GenKey(PathBuf),
}

/// The help text.
pub const USAGE: &str = "\
Usage: doca_socket_relay [DOCA Flags] [Program Flags]

DOCA Flags:
  -h, --help                  Print a help synopsis
  -v, --version               Print program version information
  -l, --log-level N           Set the log level for the program: 10=DISABLE, 20=CRITICAL, 30=ERROR,
                              40=WARNING, 50=INFO, 60=DEBUG, 70=TRACE, or a name (disable,
                              critical, error, warning or warn, info, debug, trace) (default 50)
      --sdk-log-level N       Set the SDK log level (accepted; the relay logs no SDK events)
  -j, --json PATH             Parse all command flags from an input json file (the only other flag
                              allowed is --check)

Program Flags:
  -s, --socket PATH           Mandatory. Unix domain socket path: the host side binds it for
                              clients, the DPU side connects to the server application there
  -n, --cc-name NAME          Mandatory. Comm Channel service name (both sides must agree)
  -p, --pci-addr ADDR         DOCA device PCI address (BB:DD.F or DDDD:BB:DD.F); mandatory with a
                              doca channel
  -r, --rep-pci ADDR          DOCA device representor PCI address; mandatory on the DPU with a doca
                              channel
      --role host|dpu         Which side this is (default: dpu when --rep-pci is given, else host)
      --channel CHANNEL       doca (default: comch if installed, else comm-channel) | comch |
                              comm-channel | tcp:HOST:PORT | unix:PATH; the DPU side listens, the
                              host side connects
      --max-clients N         Most clients relayed at once, 1-65535 (default 512)
      --busy-poll USEC        Keep polling the sockets for up to USEC microseconds before the
                              event loop sleeps: lower latency for a core's worth of CPU while
                              traffic flows (default 0: sleep at once; up to 1000000)
      --drain-timeout SECONDS On SIGTERM, let open streams finish for up to SECONDS (no new
                              ones), then cut the rest (default 10; 0-3600)
      --psk-file PATH         Pre-shared key (32 to 4096 bytes; make one with --gen-key)
                              authenticating the channel; required on a tcp channel unless
                              --no-auth
      --psk-file-next PATH    A second key accepted from the peer during a key rotation
      --no-auth               Allow a tcp channel without authentication
      --encrypt               Encrypt the channel (Noise, keyed by --psk-file); the default on tcp
      --no-encrypt            Keep a keyed tcp channel in clear (a trusted point-to-point link)
      --cipher CIPHER         aes-gcm (default) | chacha-poly; both sides must agree
      --socket-mode OCTAL     Permission bits of the host socket (default 0660)
      --log-target TARGET     stderr (default) | syslog | syslog:PATH (facility daemon)
      --metrics ADDR          Serve GET /metrics (Prometheus) and /streams (JSON) on
                              tcp:HOST:PORT or unix:PATH (default: off)
      --check                 Check the configuration, key file and paths, print what would run,
                              and exit: 0 when it would start, 2 when not
      --gen-key PATH          Write a new random 32-byte key to PATH (mode 0600, never
                              overwriting) for --psk-file, and exit; the only flag allowed

Signals: SIGTERM and SIGINT stop the relay; SIGUSR1 logs every open stream and the totals;
SIGHUP reloads the --json file (log level, max clients, busy-poll, metrics, key).

Examples:
  doca_socket_relay -s /tmp/sr_server.socket -n cc_channel -p 03:00.0 -r b1:00.0   (DPU side)
  doca_socket_relay -s /tmp/sr_client.socket -n cc_channel -p 3b:00.0              (host side)
  doca_socket_relay --check --json /etc/doca-socket-relay/myapp.json
  doca_socket_relay --gen-key /etc/doca-socket-relay/myapp.key

See doca_socket_relay(1).
";

/// Flags that take a value, as (short, long).
const VALUE_FLAGS: &[(&str, &str)] = &[
    ("-l", "--log-level"),
    ("", "--sdk-log-level"),
    ("-j", "--json"),
    ("-s", "--socket"),
    ("-n", "--cc-name"),
    ("-p", "--pci-addr"),
    ("-r", "--rep-pci"),
    ("", "--role"),
    ("", "--channel"),
    ("", "--max-clients"),
    ("", "--busy-poll"),
    ("", "--drain-timeout"),
    ("", "--psk-file"),
    ("", "--psk-file-next"),
    ("", "--metrics"),
    ("", "--cipher"),
    ("", "--socket-mode"),
    ("", "--log-target"),
    ("", "--gen-key"),
];

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Command, Error> {
    reject_repeats(&args)?;
    let mut a = pico_args::Arguments::from_vec(args.clone());
    if a.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if a.contains(["-v", "--version"]) {
        return Ok(Command::Version);
    }
    if let Some(gen) = gen_key(&args) {
        return gen;
    }
    let check = a.contains("--check");
    let wrap = move |c: Config, in_file: bool| {
        if check || in_file {
            Command::Check(Box::new(c))
        } else {
            Command::Run(Box::new(c))
        }
    };
    let json: Option<PathBuf> = value(&mut a, "-j", "--json")?;
    if let Some(path) = json {
        if args.len() != 2 + usize::from(check) {
            return Err(Error::config(
                "--json: must be the only flag besides --check (put the others in the file)",
            ));
        }
        return load_json(&path).map(|(c, in_file)| wrap(c, in_file));
    }
    let general = GeneralFlags {
        log_level: value(&mut a, "-l", "--log-level")?,
        sdk_log_level: value(&mut a, "", "--sdk-log-level")?,
    };
    let program = ProgramFlags {
        socket: value(&mut a, "-s", "--socket")?,
        cc_name: value(&mut a, "-n", "--cc-name")?,
        pci_addr: value(&mut a, "-p", "--pci-addr")?,
        rep_pci: value(&mut a, "-r", "--rep-pci")?,
        role: value(&mut a, "", "--role")?,
        channel: value(&mut a, "", "--channel")?,
        max_clients: ranged(&mut a, "--max-clients", crate::config::MAX_CLIENTS_RANGE)?,
        busy_poll: ranged(&mut a, "--busy-poll", crate::config::BUSY_POLL_RANGE)?,
        drain_timeout: ranged(
            &mut a,
            "--drain-timeout",
            crate::config::DRAIN_TIMEOUT_RANGE,
        )?,
        psk_file: value(&mut a, "", "--psk-file")?,
        psk_file_next: value(&mut a, "", "--psk-file-next")?,
        no_auth: a.contains("--no-auth").then_some(true),
        encrypt: a.contains("--encrypt").then_some(true),
        no_encrypt: a.contains("--no-encrypt").then_some(true),
        cipher: value(&mut a, "", "--cipher")?,
        socket_mode: value(&mut a, "", "--socket-mode")?,
        log_target: value(&mut a, "", "--log-target")?,
        metrics: value(&mut a, "", "--metrics")?,
        check: None,
    };
    if let Some(extra) = a.finish().first() {
        return Err(Error::config(format!(
            "{}: unknown argument (see --help)",
            extra.to_string_lossy()
        )));
    }
    Config::validate(general, program, &|name| format!("--{name}")).map(|c| wrap(c, false))
}

/// Reads and validates a JSON flag file, as `--json` and a reload do; also says whether the
/// file asks for `--check` itself.
pub fn load_json(path: &Path) -> Result<(Config, bool), Error> {
    let mut file = FlagFile::load(path)?;
    let in_file = file.doca_program_flags.check.take().unwrap_or(false);
    let section = |name: &str| match name {
        "log-level" | "sdk-log-level" => "doca_general_flags",
        _ => "doca_program_flags",
    };
    // The same prefix as errors from reading the file: `--json FILE: section.key: problem`.
    let key = |name: &str| format!("--json {}: {}.{name}", path.display(), section(name));
    let mut config = Config::validate(file.doca_general_flags, file.doca_program_flags, &key)?;
    config.json = Some(path.to_path_buf());
    Ok((config, in_file))
}

/// An integer flag; a value that is not one names the flag's range.
fn ranged(
    a: &mut pico_args::Arguments,
    long: &'static str,
    range: (u32, u32),
) -> Result<Option<u32>, Error> {
    value::<String>(a, "", long)?
        .map(|s| {
            crate::config::parse_ranged(&s, range)
                .map_err(|e| Error::config(format!("{long}: {e}")))
        })
        .transpose()
}

/// `--gen-key PATH` (or `--gen-key=PATH`), which must stand alone: it writes a file and exits,
/// so any other flag is a mistake to point out rather than to drop silently. `None` when the
/// flag is absent.
fn gen_key(args: &[OsString]) -> Option<Result<Command, Error>> {
    let named = |a: &OsString| {
        a.to_str()
            .is_some_and(|s| s == "--gen-key" || s.starts_with("--gen-key="))
    };
    if !args.iter().any(named) {
        return None;
    }
    let path = match args {
        [flag, path] if flag == "--gen-key" => Some(path.clone()),
        [one] => one
            .to_str()
            .and_then(|s| s.strip_prefix("--gen-key="))
            .map(OsString::from),
        _ => {
            return Some(Err(Error::config(
                "--gen-key: must be the only flag (it writes a key file and exits)",
            )))
        }
    };
    // A value that looks like a flag (`--gen-key --check`) is a forgotten path, not a file name.
    Some(match path {
        Some(p) if !p.is_empty() && !p.to_string_lossy().starts_with('-') => {
            Ok(Command::GenKey(PathBuf::from(p)))
        }
        _ => Err(Error::config(
            "--gen-key: needs a path (a name starting with - is written ./-NAME)",
        )),
    })
}

fn value<T>(
    a: &mut pico_args::Arguments,
    short: &'static str,
    long: &'static str,
) -> Result<Option<T>, Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let keys: pico_args::Keys = if short.is_empty() {
        long.into()
    } else {
        [short, long].into()
    };
    a.opt_value_from_fn(keys, |s| s.parse::<T>().map_err(|e| e.to_string()))
        .map_err(|e| match e {
            pico_args::Error::OptionWithoutAValue(_) => {
                Error::config(format!("{long}: needs a value"))
            }
            pico_args::Error::Utf8ArgumentParsingFailed { cause, .. } => {
                Error::config(format!("{long}: {cause}"))
            }
            pico_args::Error::NonUtf8Argument => Error::config(format!("{long}: not valid UTF-8")),
            other => Error::config(format!("{long}: {other}")),
        })
}

fn reject_repeats(args: &[OsString]) -> Result<(), Error> {
    let mut seen: Vec<&str> = Vec::new();
    for arg in args.iter().filter_map(|a| a.to_str()) {
        let name = arg.split_once('=').map_or(arg, |(n, _)| n);
        let Some((_, long)) = VALUE_FLAGS
            .iter()
            .find(|(s, l)| name == *l || (!s.is_empty() && name == *s))
        else {
            continue;
        };
        if seen.contains(long) {
            return Err(Error::config(format!("{long}: given more than once")));
        }
        seen.push(long);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, Error> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn doca_style_command_line() {
        let Command::Run(c) = run(&[
            "-s", "/tmp/s", "-n", "cc", "-p", "03:00.0", "-r", "b1:00.0", "-l", "60",
        ])
        .unwrap() else {
            panic!("expected Run");
        };
        assert_eq!(c.role, crate::config::Role::Dpu);
        assert_eq!(c.log_level.0, 60);
    }

    #[test]
    fn errors_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["-s", "/tmp/s", "-n", "x", "--channel", "bogus"],
                "--channel:",
            ),
            (
                &["-s", "/tmp/s", "-n", "x", "--max-clients", "lots"],
                "--max-clients:",
            ),
            (
                &["-s", "/tmp/s", "-s", "/tmp/t"],
                "--socket: given more than once",
            ),
            (
                &["-j", "/tmp/x.json", "-l", "50"],
                "--json: must be the only flag besides --check",
            ),
            (&["--frobnicate"], "--frobnicate: unknown argument"),
            (&["-n", "x", "-p", "03:00.0"], "--socket: is mandatory"),
            (
                &["--gen-key", "/k", "--check"],
                "--gen-key: must be the only flag",
            ),
            (
                &["--check", "--gen-key=/k"],
                "--gen-key: must be the only flag",
            ),
            (&["--gen-key", "--check"], "--gen-key: needs a path"),
            (&["--gen-key="], "--gen-key: needs a path"),
            (
                &["--gen-key", "/k", "--gen-key", "/j"],
                "--gen-key: given more than once",
            ),
            (&["-s", "/tmp/s", "-n", "x", "-p", "3:0.0"], "--pci-addr:"),
            (
                &["-s", "/tmp/s", "-n", "x", "-l"],
                "--log-level: needs a value",
            ),
        ];
        for (args, want) in cases {
            let e = run(args).unwrap_err();
            assert!(e.to_string().starts_with(want), "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn gen_key_takes_one_path() {
        for args in [&["--gen-key", "/k"][..], &["--gen-key=/k"]] {
            let Ok(Command::GenKey(p)) = run(args) else {
                panic!("{args:?} should parse");
            };
            assert_eq!(p, PathBuf::from("/k"));
        }
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(run(&["-h"]), Ok(Command::Help)));
        assert!(matches!(run(&["--version"]), Ok(Command::Version)));
    }
}

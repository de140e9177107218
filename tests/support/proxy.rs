//! A proxy for the channel between the two relays that injects faults: delays, 1-byte writes,
//! stalls, and cuts at random points (tcp and AF_UNIX channels), or forwards faithfully until
//! the test cuts every connection at once.

// Each test binary that includes this module uses only some of the faults.
#![allow(dead_code)]

use super::common::{free_tcp_port, wait_until, write_psk, Chan, Pattern, SERVICE};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Where the two relays of a proxied channel meet: the DPU side listens on `dpu_chan`, the
/// proxy on `host_chan`, where the host side connects. Both sides share a PSK.
pub struct Route {
    /// The DPU side's `--channel`.
    pub dpu_chan: String,
    /// The host side's `--channel` (the proxy's address).
    pub host_chan: String,
    key: String,
}

impl Route {
    /// Fresh addresses (tcp on 127.0.0.1, or unix sockets in `dir`) and a key file in `dir`.
    pub fn new(chan: Chan, dir: &Path) -> Route {
        let (dpu_chan, host_chan) = match chan {
            Chan::Tcp => (
                format!("tcp:127.0.0.1:{}", free_tcp_port()),
                format!("tcp:127.0.0.1:{}", free_tcp_port()),
            ),
            _ => (
                format!("unix:{}", dir.join("dpu.chan").display()),
                format!("unix:{}", dir.join("host.chan").display()),
            ),
        };
        let key = write_psk(dir, "k.key").display().to_string();
        Route {
            dpu_chan,
            host_chan,
            key,
        }
    }

    /// The arguments of the `role` side with local socket `sock`.
    pub fn args(&self, role: &str, sock: &Path) -> Vec<String> {
        let chan = if role == "dpu" {
            &self.dpu_chan
        } else {
            &self.host_chan
        };
        let sock = sock.display().to_string();
        let a = [
            "--role",
            role,
            "--channel",
            chan,
            "-s",
            &sock,
            "-n",
            SERVICE,
            "--psk-file",
            &self.key,
        ];
        a.iter().map(|s| s.to_string()).collect()
    }

    /// Waits up to `timeout` for the DPU side to listen, so that the host's first attempts
    /// through the proxy do not run into its growing back-off. (A unix channel counts once
    /// its socket file exists.)
    pub fn wait_dpu_listening(&self, timeout: Duration) -> bool {
        wait_until(timeout, || match self.dpu_chan.strip_prefix("tcp:") {
            Some(a) => TcpStream::connect(a).is_ok(),
            None => Path::new(self.dpu_chan.trim_start_matches("unix:")).exists(),
        })
    }
}

/// What the proxy does to the bytes of each channel connection.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Sleeps a few ms before forwarding each read.
    Delay,
    /// Forwards one byte per write.
    OneByte,
    /// Stops forwarding for 1.5 s after every 64 KiB.
    Stall,
    /// Closes the first connections after a random number of bytes (each direction counts).
    Cut,
    /// Forwards faithfully; [`Proxy::cut_all`] cuts the channel when the test decides.
    Pass,
}

/// One side of a proxied connection: a tcp or AF_UNIX stream.
trait Conn: Read + Write + Send + 'static {
    fn close(&self);
    fn dup(&self) -> Box<dyn Conn>;
}

impl Conn for TcpStream {
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn dup(&self) -> Box<dyn Conn> {
        Box::new(self.try_clone().unwrap())
    }
}

impl Conn for UnixStream {
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn dup(&self) -> Box<dyn Conn> {
        Box::new(self.try_clone().unwrap())
    }
}

/// A proxy listening at the host side's channel address and forwarding to the DPU side's.
pub struct Proxy {
    stop: Arc<AtomicBool>,
    /// Channel connections cut so far.
    pub cuts: Arc<AtomicUsize>,
    /// Both sides of every connection forwarded now, for [`Proxy::cut_all`].
    live: Arc<Mutex<Vec<Box<dyn Conn>>>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Proxy {
    pub fn start(chan: Chan, listen: &str, upstream: &str, fault: Fault, seed: u64) -> Proxy {
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let accept: Box<dyn Fn() -> io::Result<Box<dyn Conn>> + Send> = match chan {
            Chan::Tcp => {
                let l = TcpListener::bind(listen.trim_start_matches("tcp:")).unwrap();
                l.set_nonblocking(true).unwrap();
                Box::new(move || l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>))
            }
            _ => {
                let l = UnixListener::bind(listen.trim_start_matches("unix:")).unwrap();
                l.set_nonblocking(true).unwrap();
                Box::new(move || l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>))
            }
        };
        let upstream = upstream.to_string();
        let connect = move || -> io::Result<Box<dyn Conn>> {
            match upstream.strip_prefix("tcp:") {
                Some(a) => Ok(Box::new(TcpStream::connect(a)?)),
                None => Ok(Box::new(UnixStream::connect(
                    upstream.trim_start_matches("unix:"),
                )?)),
            }
        };
        let live: Arc<Mutex<Vec<Box<dyn Conn>>>> = Arc::default();
        let (stop2, cuts2, live2) = (stop.clone(), cuts.clone(), live.clone());
        thread::spawn(move || {
            let rng = Mutex::new(Pattern::new(seed));
            // Bounded: ends with the test, or after 5 minutes at most.
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok(down) = accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Ok(up) = connect() else {
                    continue;
                };
                // Cut only the first three connections, so the relays can recover.
                let cut_at = match fault {
                    Fault::Cut if cuts2.fetch_add(1, Ordering::SeqCst) < 3 => {
                        Some(rng.lock().unwrap().range(1, 300_000))
                    }
                    _ => None,
                };
                if let Fault::Pass = fault {
                    live2.lock().unwrap().extend([down.dup(), up.dup()]);
                }
                let budget = Arc::new(Mutex::new(cut_at.unwrap_or(usize::MAX)));
                for (from, to) in [(down.dup(), up.dup()), (up.dup(), down.dup())] {
                    let (stop, budget) = (stop2.clone(), budget.clone());
                    thread::spawn(move || forward(from, to, fault, &budget, &stop));
                }
            }
        });
        Proxy { stop, cuts, live }
    }

    /// Cuts every connection forwarded now (both sides see the channel close mid-stream) and
    /// returns how many there were. Later connections are forwarded as before.
    pub fn cut_all(&self) -> usize {
        let conns = std::mem::take(&mut *self.live.lock().unwrap());
        conns.iter().for_each(|c| c.close());
        self.cuts.fetch_add(conns.len() / 2, Ordering::SeqCst);
        conns.len() / 2
    }
}

/// Copies `from` to `to` with `fault` until either side ends, the budget of bytes shared by
/// both directions runs out (then both sides are closed mid-stream), or the test ends.
fn forward(
    mut from: Box<dyn Conn>,
    mut to: Box<dyn Conn>,
    fault: Fault,
    budget: &Mutex<usize>,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut since_stall = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let got = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = {
            let mut left = budget.lock().unwrap();
            let n = got.min(*left);
            *left -= n;
            n
        };
        let ok = match fault {
            Fault::Delay => {
                thread::sleep(Duration::from_millis(3));
                to.write_all(&buf[..n]).is_ok()
            }
            Fault::OneByte => buf[..n].iter().all(|b| to.write_all(&[*b]).is_ok()),
            Fault::Stall => {
                since_stall += n;
                if since_stall > 64 * 1024 {
                    since_stall = 0;
                    thread::sleep(Duration::from_millis(1500));
                }
                to.write_all(&buf[..n]).is_ok()
            }
            Fault::Cut | Fault::Pass => to.write_all(&buf[..n]).is_ok(),
        };
        if !ok || n < got || *budget.lock().unwrap() == 0 {
            break;
        }
    }
    from.close();
    to.close();
}

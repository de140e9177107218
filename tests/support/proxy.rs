//! A proxy for the channel between the two relays that injects faults: delays, 1-byte writes,
//! stalls, and cuts at random points (tcp and AF_UNIX channels).

use super::common::{Chan, Pattern};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
        let (stop2, cuts2) = (stop.clone(), cuts.clone());
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
                let budget = Arc::new(Mutex::new(cut_at.unwrap_or(usize::MAX)));
                for (from, to) in [(down.dup(), up.dup()), (up.dup(), down.dup())] {
                    let (stop, budget) = (stop2.clone(), budget.clone());
                    thread::spawn(move || forward(from, to, fault, &budget, &stop));
                }
            }
        });
        Proxy { stop, cuts }
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
            Fault::Cut => to.write_all(&buf[..n]).is_ok(),
        };
        if !ok || n < got || *budget.lock().unwrap() == 0 {
            break;
        }
    }
    from.close();
    to.close();
}

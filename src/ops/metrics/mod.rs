//! `--metrics ADDR`: a small HTTP endpoint for Prometheus (`GET /metrics`, the text exposition
//! format) and for tools (`GET /streams`, the per-stream view that SIGUSR1 logs, as JSON).
//!
//! Off the data path: the counters are plain integers the event loop's thread updates
//! ([`crate::mux::Stats`]), and they are only read and rendered here when a scrape arrives.
//! The listener runs on async-io's reactor, not on the relay's own loop, so with metrics on the
//! relayed bytes cost the same system calls as without.
//!
//! Its clients are treated as hostile: at most [`MAX_CONNECTIONS`] at once (a new one pushes
//! out the oldest that is still sending its request), a request must arrive whole within [`REQUEST_TIMEOUT`] and fit in
//! [`MAX_REQUEST`] bytes, only `GET` is served, and every answer closes the connection.

mod render;

use crate::config::{Config, MetricsAddr};
use crate::error::Error;
use crate::mux::Stats;
use async_executor::{LocalExecutor, Task};
use async_io::Timer;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

pub use render::{render, streams_json, Info};

/// Most connections served at once; Prometheus makes one at a time per target.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request (request line and headers) read; a larger one is answered 431.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time for a request to arrive whole, and again for the answer to be taken.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound endpoint, ready for [`serve`].
pub enum Listener {
    /// On a tcp address.
    Tcp(async_net::TcpListener),
    /// On an AF_UNIX path, removed when this is dropped.
    #[cfg(unix)]
    Unix(
        async_io::Async<crate::sys::unix_socket::UnixListener>,
        // Held for its Drop, which removes the socket file.
        #[allow(dead_code)] crate::sys::unix_socket::SocketFile,
    ),
}

/// Binds the endpoint, before the relay reports itself ready, so that an address in use stops
/// the start like any other.
pub async fn bind(addr: &MetricsAddr) -> Result<Listener, Error> {
    let what = || format!("--metrics {addr}");
    match addr {
        MetricsAddr::Tcp(host, port) => async_net::TcpListener::bind((host.as_str(), *port))
            .await
            .map(Listener::Tcp)
            .map_err(|e| Error::io(what(), e)),
        #[cfg(unix)]
        MetricsAddr::Unix(path) => {
            let (l, file) = crate::sys::unix_socket::bind(path, 0o660, 16)?;
            Ok(Listener::Unix(l, file))
        }
        #[cfg(not(unix))]
        MetricsAddr::Unix(_) => Err(Error::config(format!(
            "{}: only tcp:HOST:PORT on this platform",
            what()
        ))),
    }
}

/// One accepted scrape connection.
trait Conn: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin {}
impl<T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin> Conn for T {}

/// Serves scrapes until the relay stops. `info` labels `doca_socket_relay_info`.
///
/// At [`MAX_CONNECTIONS`], a new connection takes the place of the oldest one still sending
/// its request: connections that send nothing cannot lock Prometheus out, and a scrape, which
/// sends its request at once, is past that point long before it could be pushed out.
pub async fn serve(
    listener: Listener,
    stats: Rc<Stats>,
    info: Rc<Info>,
    ex: Rc<LocalExecutor<'static>>,
) {
    // Each connection's task (dropping it closes the connection) and whether it is still
    // reading its request.
    let mut open: VecDeque<(Task<()>, Rc<Cell<bool>>)> = VecDeque::new();
    loop {
        let conn: std::io::Result<Box<dyn Conn>> = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Conn>),
            #[cfg(unix)]
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Conn>),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                // Out of fds, most likely: back off rather than spin.
                crate::logging::ratelimit::log(
                    log::Level::Warn,
                    crate::logging::ratelimit::Kind::MetricsAccept,
                    format_args!("--metrics: accepting: {e}"),
                );
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        open.retain(|(task, _)| !task.is_finished());
        if open.len() >= MAX_CONNECTIONS {
            match open.iter().position(|(_, reading)| reading.get()) {
                Some(oldest) => drop(open.remove(oldest)),
                // Every slot is writing an answer: this one is closed unanswered.
                None => continue,
            }
        }
        let reading = Rc::new(Cell::new(true));
        let (stats, info, flag) = (stats.clone(), info.clone(), reading.clone());
        let task = ex.spawn(async move { answer(conn, &stats, &info, &flag).await });
        open.push_back((task, reading));
    }
}

/// Reads one request and writes one answer, each within [`REQUEST_TIMEOUT`].
async fn answer(mut conn: Box<dyn Conn>, stats: &Stats, info: &Info, reading: &Cell<bool>) {
    let request = future::or(read_request(&mut conn), async {
        Timer::after(REQUEST_TIMEOUT).await;
        Err(Status::Timeout)
    })
    .await;
    reading.set(false);
    let (status, content_type, body) = match request.and_then(|r| route(&r)) {
        Ok(Route::Metrics) => (Status::Ok, render::CONTENT_TYPE, render(stats, info)),
        Ok(Route::Streams) => (Status::Ok, "application/json", streams_json(stats)),
        Err(status) => (
            status,
            "text/plain; charset=utf-8",
            format!("{}\n", status.why()),
        ),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        status.code(),
        status.text(),
        body.len(),
        if status == Status::Method { "Allow: GET\r\n" } else { "" },
    );
    let write = async {
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(body.as_bytes()).await?;
        conn.flush().await
    };
    let _ = future::or(write, async {
        Timer::after(REQUEST_TIMEOUT).await;
        Ok(())
    })
    .await;
}

/// An answer other than the two pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    Method,
    Timeout,
    TooLarge,
}

impl Status {
    fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::Method => 405,
            Status::Timeout => 408,
            Status::TooLarge => 431,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::Method => "Method Not Allowed",
            Status::Timeout => "Request Timeout",
            Status::TooLarge => "Request Header Fields Too Large",
        }
    }
}

impl Status {
    /// The body: what to do instead, where there is something.
    fn why(self) -> &'static str {
        match self {
            Status::NotFound => "not found: GET /metrics (Prometheus) or /streams (JSON)",
            Status::Method => "only GET is served",
            Status::TooLarge => "request headers over 8 KiB",
            Status::Timeout => "the request did not arrive within 5 s",
            other => other.text(),
        }
    }
}

enum Route {
    Metrics,
    Streams,
}

/// Reads up to the blank line that ends the headers; a request has no body here.
async fn read_request(conn: &mut Box<dyn Conn>) -> Result<Vec<u8>, Status> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    loop {
        if head_end(&buf[..len]).is_some() {
            buf.truncate(len);
            return Ok(buf);
        }
        if len == buf.len() {
            return Err(Status::TooLarge);
        }
        match conn.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return Err(Status::BadRequest),
            Ok(n) => len += n,
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// The request line decides: `GET /metrics` or `GET /streams`, a query string ignored.
fn route(request: &[u8]) -> Result<Route, Status> {
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| Status::BadRequest)?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Status::BadRequest);
    }
    if method != "GET" {
        return Err(Status::Method);
    }
    match target.split('?').next() {
        Some("/metrics") => Ok(Route::Metrics),
        Some("/streams") => Ok(Route::Streams),
        _ => Err(Status::NotFound),
    }
}

/// Binds and starts the endpoint when `cfg` asks for one; dropping the task stops it (and
/// removes its socket file).
pub async fn start(
    cfg: &Config,
    stats: &Rc<Stats>,
    ex: &Rc<LocalExecutor<'static>>,
) -> Result<Option<Task<()>>, Error> {
    let Some(addr) = &cfg.metrics else {
        return Ok(None);
    };
    let listener = bind(addr).await?;
    log::info!("metrics on {addr} (GET /metrics, /streams)");
    let info = Rc::new(Info::of(cfg));
    Ok(Some(ex.spawn(serve(
        listener,
        stats.clone(),
        info,
        ex.clone(),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_refusals() {
        let ok = |r: &str| route(r.as_bytes()).map(|r| matches!(r, Route::Metrics));
        assert_eq!(ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(true));
        assert_eq!(ok("GET /metrics?x=1 HTTP/1.0\n\n"), Ok(true));
        assert_eq!(ok("GET /streams HTTP/1.1\r\n\r\n"), Ok(false));
        assert_eq!(
            ok("POST /metrics HTTP/1.1\r\n\r\n").err(),
            Some(Status::Method)
        );
        assert_eq!(ok("GET / HTTP/1.1\r\n\r\n").err(), Some(Status::NotFound));
        assert_eq!(ok("GET /metrics\r\n\r\n").err(), Some(Status::BadRequest));
        assert_eq!(
            ok("GET /metrics SPDY/3\r\n\r\n").err(),
            Some(Status::BadRequest)
        );
        assert_eq!(ok("\u{ff}\r\n\r\n").err(), Some(Status::BadRequest));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            "tcp:127.0.0.1:9100".parse(),
            Ok(MetricsAddr::Tcp("127.0.0.1".into(), 9100))
        );
        assert_eq!(
            "unix:/run/m.sock".parse(),
            Ok(MetricsAddr::Unix("/run/m.sock".into()))
        );
        assert!("doca".parse::<MetricsAddr>().is_err());
        assert!("comch".parse::<MetricsAddr>().is_err());
        assert_eq!(MetricsAddr::Tcp("::1".into(), 9).to_string(), "tcp:[::1]:9");
    }
}

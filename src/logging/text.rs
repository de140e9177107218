//! Small helpers for the text of log lines.

/// "1 stream" or "2 streams".
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Text from the peer, made safe to log: quoted (no forged log lines) and cut short.
pub fn lossy(p: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(p).chars().take(200).collect();
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::{count, lossy};

    #[test]
    fn counts_agree_in_number() {
        assert_eq!(count(1, "open stream"), "1 open stream");
        assert_eq!(count(0, "client"), "0 clients");
        assert_eq!(count(7, "client"), "7 clients");
    }

    #[test]
    fn peer_text_is_quoted_and_cut() {
        assert_eq!(lossy(b"a\nb"), "\"a\\nb\"");
        assert_eq!(lossy(&[b'x'; 500]).len(), 202);
    }
}

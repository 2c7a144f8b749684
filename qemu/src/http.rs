//! The host's side of a guest's HTTP service (QEMU's user network forwards a loopback port
//! to the guest's port 80): free loopback ports for the forwards and a small HTTP/1.0
//! client. Shared by the integration tests (`axolotl_tests::http`) and xtask's in-system
//! campaign, which judge a guest's answers the same way.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// A TCP port on 127.0.0.1 nothing listens on now (QEMU binds it right after).
pub fn free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}

/// A UDP port on 127.0.0.1 nothing is bound to now.
pub fn free_udp_port() -> std::io::Result<u16> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:`port`, waiting at most `timeout` for each read;
/// the status code and the body. A body shorter or longer than the answer's Content-Length
/// is an error: a connection cut by a restart under it must not pass for a whole answer.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: gateway\r\n\r\n").map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .map_err(|e| format!("GET {path}: {e}"))?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no header end in {} bytes", all.len()))?;
    let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status in {head:?}"))?;
    let body = all[head_end + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(n) = length
        && n != body.len()
    {
        return Err(format!(
            "GET {path}: Content-Length {n}, body {} bytes",
            body.len()
        ));
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one connection with `answer` and returns the port.
    fn serve_once(answer: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            // The whole request first: closing with unread bytes would reset the connection
            // under the client's write.
            let mut req = Vec::new();
            let mut buf = [0u8; 256];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            c.write_all(answer).unwrap();
        });
        port
    }

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn a_whole_answer_gives_status_and_body() {
        let port = serve_once(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(http_get(port, "/", T), Ok((200, b"hello".to_vec())));
        let port = serve_once(b"HTTP/1.0 404 Not Found\r\n\r\n");
        assert_eq!(http_get(port, "/x", T), Ok((404, Vec::new())));
    }

    #[test]
    fn a_cut_or_headless_answer_is_an_error() {
        let port = serve_once(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nhello");
        let e = http_get(port, "/", T).unwrap_err();
        assert!(e.contains("Content-Length 9, body 5 bytes"), "{e}");
        let port = serve_once(b"HTTP/1.0 200 OK\r\nContent-");
        let e = http_get(port, "/", T).unwrap_err();
        assert!(e.contains("no header end"), "{e}");
        let port = serve_once(b"garbage\r\n\r\n");
        let e = http_get(port, "/", T).unwrap_err();
        assert!(e.contains("no status"), "{e}");
    }
}

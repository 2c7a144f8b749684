//! The host end (feature `std`): a connection to a control PD over a unix socket (the one
//! QEMU gives the system's control UART), shared by `cargo xtask ctl` and the integration
//! tests.
//!
//! Every request is sent again when no answer comes within [`ATTEMPT`] (control-pd may have
//! been restarted and lost it, a driver restart may have cut the reply): a reply carries
//! the request's id, so a late answer to an earlier attempt is recognised and dropped. A
//! retried restart may therefore be carried out twice; status, log and hold may be retried
//! freely.

extern crate std;

use std::boxed::Box;
use std::collections::VecDeque;
use std::format;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::string::{String, ToString};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::{
    Deframer, Error, FRAME_BUFFER, Frame, MAX_FRAME, PdStatus, Reply, Request, VERSION, decode,
    encode,
};

/// How long one attempt waits before the request is sent again.
pub const ATTEMPT: Duration = Duration::from_secs(5);
/// How long after an [`Error::Unavailable`] answer the request is sent again.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_millis(200);

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// No socket at the path.
    NoSocket(String),
    /// A socket nobody listens on: the system stopped.
    Stopped(String),
    /// The connection failed otherwise.
    Io(String),
    /// No answer within the timeout, after this many attempts.
    NoAnswer { attempts: u32, secs: u64 },
    /// The request does not fit a frame.
    TooLarge,
    /// An answer other than the one asked for (an error reply, mostly).
    Unexpected(Box<Reply>),
    /// The system speaks another protocol version (its frames carry `system`).
    Version { system: u8 },
    /// The status rows of every read disagreed among themselves (their `total`s, or a row
    /// missing below the `total` another named), this many reads in a row.
    Inconsistent { reads: u32 },
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::NoSocket(p) => write!(
                f,
                "no control socket at {p}: no system with a control PD is running (start one: \
                 `cargo xtask run --system systems/control.system`), or give its socket with \
                 --socket"
            ),
            ClientError::Stopped(p) => {
                write!(
                    f,
                    "nothing listens on {p}: the system that made it has stopped"
                )
            }
            ClientError::Io(e) => write!(f, "the control socket failed: {e}"),
            ClientError::NoAnswer { attempts, secs } => write!(
                f,
                "no answer after {attempts} attempts in {secs} s: the system is running but \
                 its control PD does not answer (see the system's console)"
            ),
            ClientError::TooLarge => f.write_str("the request does not fit a frame"),
            ClientError::Unexpected(r) if let Reply::Error(e) = &**r => f.write_str(&explain(e)),
            ClientError::Unexpected(r) => write!(f, "unexpected answer: {r:?}"),
            ClientError::Version { system } => write!(
                f,
                "the system speaks control protocol version {system}, this CLI version \
                 {VERSION}: use the `cargo xtask ctl` of the tree the system was built from"
            ),
            ClientError::Inconsistent { reads } => write!(
                f,
                "the system's status rows contradicted each other in {reads} reads (their \
                 count changed within a read): its monitor or control PD is failing (see the \
                 system's console)"
            ),
        }
    }
}

/// An error reply, said with what to do about it.
pub fn explain(e: &Error) -> String {
    match e {
        Error::UnknownName => {
            "no PD or VM of that name (`cargo xtask ctl status` lists them)".into()
        }
        Error::NotGranted => "not granted: the system's SDF does not give its control PD this \
                              request (`control=\"...\"`, docs/control.md)"
            .into(),
        Error::NotManaged => "that PD is not the monitor's to act on (a child PD, the monitor \
                              or the control PD itself)"
            .into(),
        Error::BadState => "not possible in the PD's state (restart a running PD, release a \
                            held one)"
            .into(),
        Error::Unsupported => "the system does not implement this request yet".into(),
        Error::Version { got, supported } => format!(
            "the system speaks control protocol version {supported}, this CLI version {got}: \
             use the `cargo xtask ctl` of the tree the system was built from"
        ),
        Error::BadTarget => "no such register or bit (registers: pc, sp, spsr, x0..x30, \
                             tpidr_el0 or 0..34; bits 0..63), or --at for a kind other than \
                             bit-flip"
            .into(),
        Error::NoRing => "that PD maps no ring region read-write: nothing to corrupt".into(),
        other => format!("the system answered: {other}"),
    }
}

/// Reads of the status rows [`Client::status`] makes before it gives up on rows that
/// contradict each other.
pub const STATUS_READS: u32 = 3;

/// A connection to a control PD.
pub struct Client {
    stream: UnixStream,
    deframer: Deframer<MAX_FRAME>,
    /// Bytes read and not yet deframed.
    unread: VecDeque<u8>,
    next_id: u16,
    timeout: Duration,
}

impl Client {
    /// Connects to the socket at `path`; each request then waits up to `timeout` for its
    /// answer, retries included.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| {
            let p = path.display().to_string();
            match e.kind() {
                ErrorKind::NotFound => ClientError::NoSocket(p),
                ErrorKind::ConnectionRefused => ClientError::Stopped(p),
                _ => ClientError::Io(format!("{p}: {e}")),
            }
        })?;
        Ok(Client {
            stream,
            deframer: Deframer::new(),
            unread: VecDeque::new(),
            next_id: 1,
            timeout,
        })
    }

    /// The id the next request gets.
    pub fn next_id(&self) -> u16 {
        self.next_id
    }

    /// Sends raw bytes (tests: malformed frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(bytes)
            .map_err(|e| ClientError::Io(format!("the system went away: {e}")))
    }

    /// The next well-formed reply within `wait`, whatever its id.
    pub fn next_reply(&mut self, wait: Duration) -> Result<Option<(u16, Reply)>, ClientError> {
        let until = Instant::now() + wait;
        let mut buf = [0u8; 256];
        loop {
            // Bytes read past the previous reply first: they may hold the next one.
            while let Some(b) = self.unread.pop_front() {
                if let Some(Frame::Complete(f)) = self.deframer.push(b) {
                    match decode::<Reply>(f) {
                        Ok(r) => return Ok(Some(r)),
                        // A frame intact but of another version: no retry will help.
                        Err((_, Error::Version { got, .. })) => {
                            return Err(ClientError::Version { system: got });
                        }
                        Err(_) => {}
                    }
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| ClientError::Io(e.to_string()))?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(ClientError::Io(
                        "the system closed the control socket (it stopped)".into(),
                    ));
                }
                Ok(n) => self.unread.extend(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::Io(e.to_string())),
            }
        }
    }

    /// Asks `req`, sending it again when no answer comes within an attempt, or when control
    /// answers that the monitor gave it none (`Unavailable`: the monitor was restarted
    /// while it served the request, seen in the monitor's fault-injection campaign,
    /// docs/resilience.md; the restarted one answers the retry): the answer. `Unavailable`
    /// until the timeout is the answer then.
    pub fn ask(&mut self, req: &Request) -> Result<Reply, ClientError> {
        let until = Instant::now() + self.timeout;
        let mut frame = [0u8; FRAME_BUFFER + 1];
        let mut attempts = 0;
        let mut unavailable = None;
        while Instant::now() < until {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            // A leading delimiter ends whatever partial frame a previous client left behind.
            frame[0] = 0;
            let n = encode(id, req, &mut frame[1..]).map_err(|_| ClientError::TooLarge)?;
            self.send_raw(&frame[..n + 1])?;
            attempts += 1;
            let attempt_end = (Instant::now() + ATTEMPT).min(until);
            while let Some((got, reply)) =
                self.next_reply(attempt_end.saturating_duration_since(Instant::now()))?
            {
                if got == id && reply == Reply::Error(Error::Unavailable) {
                    unavailable = Some(reply);
                    std::thread::sleep(
                        UNAVAILABLE_RETRY.min(until.saturating_duration_since(Instant::now())),
                    );
                    break;
                }
                if got == id {
                    return Ok(reply);
                }
                // id 0: our frame arrived damaged (the system could not trust its id); any
                // other: a late answer to an earlier attempt. Either way, try again now.
                if got == 0 {
                    break;
                }
            }
        }
        if let Some(reply) = unavailable {
            return Ok(reply);
        }
        Err(ClientError::NoAnswer {
            attempts,
            secs: self.timeout.as_secs(),
        })
    }

    /// Asks `req` and expects [`Reply::Done`].
    pub fn act(&mut self, req: &Request) -> Result<(), ClientError> {
        match self.ask(req)? {
            Reply::Done => Ok(()),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Every PD's status row. The rows of one read must agree on their count (a system's
    /// PDs are fixed): a read whose rows contradict each other is made again, up to
    /// [`STATUS_READS`] times. The monitor's campaign, id 250: a monitor with a flipped
    /// stack pointer answered one row with a count of 0, and the table ended after four of
    /// six PDs, without an error.
    pub fn status(&mut self) -> Result<Vec<PdStatus>, ClientError> {
        for _ in 0..STATUS_READS {
            if let Some(rows) = self.status_once()? {
                return Ok(rows);
            }
        }
        Err(ClientError::Inconsistent {
            reads: STATUS_READS,
        })
    }

    /// One read of the rows; `None` if they contradicted each other.
    fn status_once(&mut self) -> Result<Option<Vec<PdStatus>>, ClientError> {
        let mut rows = Vec::new();
        let mut index = 0u8;
        let mut count = None;
        loop {
            match self.ask(&Request::Status { index })? {
                Reply::Pd { total, status } => {
                    // A row beyond the count it gives, or a count other than the read's.
                    if total <= index || *count.get_or_insert(total) != total {
                        return Ok(None);
                    }
                    rows.push(status);
                    index += 1;
                    if index >= total {
                        return Ok(Some(rows));
                    }
                }
                // No row at all (no PD to show), or one missing below the count.
                Reply::Error(Error::NoSuchIndex) => return Ok(count.is_none().then_some(rows)),
                other => return Err(ClientError::Unexpected(Box::new(other))),
            }
        }
    }
}

//! The CLI's client against a control PD played by a thread on a real unix socket, speaking
//! the real protocol (lib/control-proto's `serve`).

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use axolotl_control_proto::{
    Deframer, Error, FRAME_BUFFER, Frame, MAX_FRAME, Reply, Request, serve,
};

use super::*;

fn socket(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("axolotl-ctl-{}-{name}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("c.sock");
    let _ = std::fs::remove_file(&p);
    p
}

/// A control PD that answers with `answer`, dropping the first `drop` requests unanswered
/// (as a control-pd restarted mid-request would).
fn fake_system(path: &Path, mut drop: usize, answer: fn(Request) -> Reply) {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut d = Deframer::<MAX_FRAME>::new();
        let mut buf = [0u8; 64];
        loop {
            let Ok(n) = s.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            for &b in &buf[..n] {
                let mut out = [0u8; FRAME_BUFFER];
                let m = match d.push(b) {
                    Some(Frame::Complete(f)) => serve(f, answer, &mut out),
                    _ => continue,
                };
                if drop > 0 {
                    drop -= 1;
                    continue;
                }
                let _ = s.write_all(&out[..m]);
            }
        }
    });
}

fn refuse_all(_: Request) -> Reply {
    Reply::Error(Error::NotGranted)
}

fn done(_: Request) -> Reply {
    Reply::Done
}

#[test]
fn a_missing_socket_says_no_system_runs() {
    let p = socket("missing");
    let Err(e) = Client::connect(&p, Duration::from_secs(1)) else {
        panic!("connected to nothing")
    };
    let f = failed(e);
    assert_eq!(f.code, UNREACHABLE);
    assert!(
        f.message.contains("no system with a control PD is running"),
        "{}",
        f.message
    );
}

#[test]
fn a_dead_socket_says_the_system_stopped() {
    let p = socket("dead");
    drop(UnixListener::bind(&p).unwrap());
    let Err(e) = Client::connect(&p, Duration::from_secs(1)) else {
        panic!("connected to nothing")
    };
    let f = failed(e);
    assert_eq!(f.code, UNREACHABLE);
    assert!(f.message.contains("has stopped"), "{}", f.message);
}

#[test]
fn a_lost_request_is_retried() {
    let p = socket("retry");
    fake_system(&p, 1, done);
    let mut c = Client::connect(&p, Duration::from_secs(30)).unwrap();
    let r = c.ask(&Request::Restart {
        pd: name("serial_driver").unwrap(),
        if_generation: None,
    });
    assert_eq!(r.ok(), Some(Reply::Done));
    // The first attempt's id went unanswered; the second's was.
    assert_eq!(c.next_id(), 3);
}

/// Answers `Unavailable` to the first request and `Done` after, as control-pd does when the
/// monitor is restarted while it serves a request.
fn unavailable_once(_: Request) -> Reply {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ONCE: AtomicBool = AtomicBool::new(false);
    if ONCE.swap(true, Ordering::SeqCst) {
        Reply::Done
    } else {
        Reply::Error(Error::Unavailable)
    }
}

fn always_unavailable(_: Request) -> Reply {
    Reply::Error(Error::Unavailable)
}

#[test]
fn a_request_the_monitor_could_not_answer_is_retried() {
    let p = socket("unavailable");
    fake_system(&p, 0, unavailable_once);
    let mut c = Client::connect(&p, Duration::from_secs(30)).unwrap();
    assert_eq!(c.ask(&Request::Log { seq: 0 }).ok(), Some(Reply::Done));
    assert_eq!(c.next_id(), 3);
    // A monitor that never answers: `Unavailable` is the answer at the timeout.
    let p = socket("unavailable-always");
    fake_system(&p, 0, always_unavailable);
    let mut c = Client::connect(&p, Duration::from_secs(1)).unwrap();
    let r = c.ask(&Request::Log { seq: 0 }).ok().unwrap();
    assert_eq!(r, Reply::Error(Error::Unavailable));
    assert!(c.next_id() > 2);
}

#[test]
fn refusals_are_explained() {
    let p = socket("refused");
    fake_system(&p, 0, refuse_all);
    let mut c = Client::connect(&p, Duration::from_secs(30)).unwrap();
    let r = c
        .ask(&Request::Inject {
            pd: name("serial_driver").unwrap(),
            kind: FaultKind::Crash,
            at: None,
        })
        .ok()
        .unwrap();
    let f = unexpected(r);
    assert_eq!(f.code, REFUSED);
    assert!(f.message.contains("not granted"), "{}", f.message);
}

#[test]
fn garbage_gets_an_error_reply_and_the_stream_recovers() {
    let p = socket("garbage");
    fake_system(&p, 0, done);
    let mut c = Client::connect(&p, Duration::from_secs(30)).unwrap();
    c.send_raw(&[0, 1, 2, 3, 4, 0]).ok().unwrap();
    let (id, r) = c.next_reply(Duration::from_secs(30)).ok().unwrap().unwrap();
    assert_eq!((id, r), (0, Reply::Error(Error::BadFrame)));
    assert_eq!(c.ask(&Request::Log { seq: 0 }).ok(), Some(Reply::Done));
}

/// A system of another protocol version: its answers are intact frames of that version,
/// which no retry will make readable.
#[test]
fn another_version_is_refused_with_what_to_do() {
    let p = socket("version");
    let l = UnixListener::bind(&p).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        // Version 2's answer: its version byte, an id, a body, the CRC of all that.
        let mut payload = vec![2u8, 1, 0, 3];
        let crc = crc32fast::hash(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        let mut out = vec![0u8; payload.len() + 2];
        let n = cobs::encode(&payload, &mut out);
        out.truncate(n);
        out.push(0);
        let _ = s.write_all(&out);
        std::thread::sleep(Duration::from_secs(30));
    });
    let mut c = Client::connect(&p, Duration::from_secs(20)).unwrap();
    let Err(e) = c.ask(&Request::Log { seq: 0 }) else {
        panic!("an answer of another version was taken")
    };
    assert_eq!(e, ClientError::Version { system: 2 });
    let f = failed(e);
    assert_eq!(f.code, REFUSED);
    let want = format!(
        "version 2, this CLI version {}",
        axolotl_control_proto::VERSION
    );
    assert!(f.message.contains(&want), "{}", f.message);
}

#[test]
fn bit_flip_targets_are_checked_before_asking() {
    assert_eq!(bit_target(FaultKind::BitFlip, None, None).ok(), Some(None));
    assert_eq!(
        bit_target(FaultKind::BitFlip, Some("x7"), Some(12)).ok(),
        Some(BitTarget::new(10, 12))
    );
    assert_eq!(
        bit_target(FaultKind::BitFlip, Some("2"), Some(0)).ok(),
        Some(BitTarget::new(2, 0))
    );
    for (kind, at, bit) in [
        (FaultKind::BitFlip, "x31", 0),
        (FaultKind::BitFlip, "x0", 64),
        (FaultKind::Crash, "x0", 1),
    ] {
        let f = bit_target(kind, Some(at), Some(bit)).unwrap_err();
        assert_eq!(f.code, USAGE, "{}", f.message);
    }
}

/// A status row of PD `index` in a system of `total`.
fn row(index: u8, total: u8) -> Reply {
    Reply::Pd {
        total,
        status: axolotl_control_proto::PdStatus {
            index,
            name: name(&format!("pd{index}")).unwrap(),
            state: axolotl_control_proto::PdState::Running,
            generation: 0,
            restarts: 0,
            restarts_in_window: 0,
            restart_limit: 0,
            last_cause: None,
            last_recovery_us: None,
            heartbeat_ms: None,
            heartbeat_age_ms: None,
            memory_bytes: 4096,
            cpu_us: None,
            guest_cpu_us: None,
            managed: true,
            vm: None,
        },
    }
}

static ROWS_ASKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Six PDs; the third row asked (the first read's index 2) says there are 2, as the
/// monitor with a flipped stack pointer did (its campaign's id 250).
fn six_rows_one_lying(r: Request) -> Reply {
    let Request::Status { index } = r else {
        return Reply::Error(Error::Unsupported);
    };
    let n = ROWS_ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if index >= 6 {
        return Reply::Error(Error::NoSuchIndex);
    }
    row(index, if n == 2 { 2 } else { 6 })
}

/// A read whose rows disagree on their count is made again: the table is whole, never cut
/// short without an error (before, the CLI stopped at the lying row: four of six, "ok").
#[test]
fn status_rows_that_contradict_each_other_are_read_again() {
    let p = socket("status-lie");
    fake_system(&p, 0, six_rows_one_lying);
    let mut c = Client::connect(&p, Duration::from_secs(30)).unwrap();
    let rows = c.status().ok().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().enumerate().all(|(i, r)| r.index as usize == i));
    // The first read (rows 0..=2) was dropped, the second taken whole.
    assert_eq!(ROWS_ASKED.load(std::sync::atomic::Ordering::Relaxed), 3 + 6);
}

fn always_contradicting(r: Request) -> Reply {
    let Request::Status { index } = r else {
        return Reply::Error(Error::Unsupported);
    };
    row(index, if index == 1 { 9 } else { 4 })
}

#[test]
fn status_rows_that_never_agree_are_an_error() {
    let p = socket("status-never");
    fake_system(&p, 0, always_contradicting);
    let mut c = Client::connect(&p, Duration::from_secs(30)).unwrap();
    let Err(e) = c.status() else {
        panic!("contradicting rows were taken")
    };
    assert_eq!(e, ClientError::Inconsistent { reads: 3 });
    assert_eq!(failed(e).code, NO_ANSWER);
}

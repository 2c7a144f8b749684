//! `cargo xtask ctl`: the host end of the management plane (issue #17, docs/control.md). It
//! speaks lib/control-proto over the unix socket QEMU gives the system's control UART
//! (`cargo xtask run` prints the path) and reports in plain words what went wrong.
//!
//! The connection, its retries and its errors are lib/control-proto's `client` (shared with
//! the integration tests); this module is the command line, the table and the exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axolotl_control_proto::client::{Client, ClientError};
use axolotl_control_proto::{
    BitTarget, Event, FaultKind, LogEntry, PdState, PdStatus, Reply, Request, VmOp, name,
};

/// The socket `cargo xtask run` gives a system with a control PD.
pub fn default_socket() -> PathBuf {
    crate::images::target_dir().join("control.sock")
}

#[derive(clap::Args)]
pub struct Args {
    /// The control socket of the running system (default: the one `cargo xtask run` makes,
    /// target/control.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print JSON (one document per answer) instead of tables and lines.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for an answer, retries included.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    cmd: CtlCmd,
}

#[derive(clap::Subcommand)]
enum CtlCmd {
    /// Every PD: state, generation, restarts, last cause, recovery latency, heartbeat, memory.
    Status,
    /// The recovery log (restarts and holds, with times).
    Log {
        /// Keep printing new entries as they come.
        #[arg(long)]
        follow: bool,
    },
    /// Restart a PD from its pristine image now.
    Restart { pd: String },
    /// Stop a PD and keep it stopped.
    Hold { pd: String },
    /// Restart a held PD and let its policy govern it again.
    Release { pd: String },
    /// Start, stop or reboot a VM.
    Vm {
        #[arg(value_parser = ["start", "stop", "reboot"])]
        op: String,
        name: String,
    },
    /// Inject a fault into a PD (crash, hang, wild-write, ring-corruption, bit-flip, code-flip), where
    /// the system grants it. Prints where it landed.
    Inject {
        pd: String,
        kind: String,
        /// bit-flip only: the register (pc, sp, spsr, x0..x30, tpidr_el0, or its number
        /// 0..34), to replay a case instead of the system's random pick; with --bit.
        #[arg(long, requires = "bit")]
        at: Option<String>,
        /// bit-flip only: the bit (0..63) of the register --at names.
        #[arg(long, requires = "at")]
        bit: Option<u8>,
    },
    /// The status table, refreshed.
    Watch {
        /// Milliseconds between refreshes.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

/// Exit codes: 0 done; 1 the system refused (an error reply); 3 no system to talk to;
/// 4 no usable answer in time; 2 is clap's usage error.
const REFUSED: u8 = 1;
const USAGE: u8 = 2;
const UNREACHABLE: u8 = 3;
const NO_ANSWER: u8 = 4;

/// What stops a command, with its exit code.
#[derive(Debug)]
pub struct Failed {
    code: u8,
    message: String,
}

impl Failed {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failed {
            code,
            message: message.into(),
        }
    }
}

pub fn main(args: Args) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("xtask ctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(args: Args) -> Result<(), Failed> {
    // Usage errors first: no need of a system to be told a kind does not exist.
    if let CtlCmd::Inject { kind, at, bit, .. } = &args.cmd {
        bit_target(fault_kind(kind)?, at.as_deref(), *bit)?;
    }
    let socket = args.socket.clone().unwrap_or_else(default_socket);
    let mut c =
        Client::connect(&socket, Duration::from_secs(args.timeout.max(1))).map_err(failed)?;
    let done = |what: &str, r: Reply| -> Result<(), Failed> {
        match r {
            Reply::Done => {
                if args.json {
                    println!("{{\"done\":true}}");
                } else {
                    println!("{what}");
                }
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    };
    match &args.cmd {
        CtlCmd::Status => {
            let rows = c.status()?;
            print_status(&rows, args.json);
            Ok(())
        }
        CtlCmd::Watch { interval_ms } => loop {
            let rows = c.status()?;
            if !args.json {
                // Clear the screen and go home: a live table, not a scroll.
                print!("\x1b[2J\x1b[H");
            }
            print_status(&rows, args.json);
            std::thread::sleep(Duration::from_millis((*interval_ms).max(100)));
        },
        CtlCmd::Log { follow } => {
            let mut seq = 0u32;
            loop {
                match c.ask(&Request::Log { seq })? {
                    Reply::Log(Some(e)) => {
                        if e.seq > seq && !args.json {
                            println!("({} older entries dropped by the system)", e.seq - seq);
                        }
                        print_entry(&e, args.json);
                        seq = e.seq.wrapping_add(1);
                    }
                    Reply::Log(None) if *follow => std::thread::sleep(Duration::from_millis(500)),
                    Reply::Log(None) => return Ok(()),
                    other => return Err(unexpected(other)),
                }
            }
        }
        CtlCmd::Restart { pd } => {
            // The generation seen now: a retry after a lost answer (the monitor restarted
            // while serving it) then restarts the PD once, not twice.
            let name = pd_name(pd)?;
            let if_generation = c
                .status()?
                .iter()
                .find(|s| s.name.as_str() == name.as_str())
                .map(|s| s.generation);
            let r = c.ask(&Request::Restart {
                pd: name,
                if_generation,
            })?;
            done(&format!("{pd}: restarted"), r)
        }
        CtlCmd::Hold { pd } => {
            let r = c.ask(&Request::Hold { pd: pd_name(pd)? })?;
            done(&format!("{pd}: held"), r)
        }
        CtlCmd::Release { pd } => {
            let r = c.ask(&Request::Release { pd: pd_name(pd)? })?;
            done(&format!("{pd}: released"), r)
        }
        CtlCmd::Vm { op, name: vm } => {
            let op = match op.as_str() {
                "start" => VmOp::Start,
                "stop" => VmOp::Stop,
                _ => VmOp::Reboot,
            };
            let r = c.ask(&Request::Vm {
                name: pd_name(vm)?,
                op,
            })?;
            done(&format!("{vm}: done"), r)
        }
        CtlCmd::Inject { pd, kind, at, bit } => {
            let k = fault_kind(kind)?;
            let r = c.ask(&Request::Inject {
                pd: pd_name(pd)?,
                kind: k,
                at: bit_target(k, at.as_deref(), *bit)?,
            })?;
            match r {
                Reply::Injected(i) => {
                    if args.json {
                        println!("{}", serde_json::to_string(&i).unwrap_or_default());
                    } else {
                        println!("{pd}: {kind} injected{i}");
                    }
                    Ok(())
                }
                other => Err(unexpected(other)),
            }
        }
    }
}

/// A bit flip's target from `--at` and `--bit` (clap has them both or neither).
fn bit_target(
    kind: FaultKind,
    at: Option<&str>,
    bit: Option<u8>,
) -> Result<Option<BitTarget>, Failed> {
    let (Some(at), Some(bit)) = (at, bit) else {
        return Ok(None);
    };
    if kind != FaultKind::BitFlip {
        return Err(Failed::new(USAGE, "--at and --bit are for bit-flip only"));
    }
    let register = BitTarget::parse_register(at).ok_or_else(|| {
        Failed::new(
            USAGE,
            format!("no register {at:?}: pc, sp, spsr, x0..x30, tpidr_el0, or 0..34"),
        )
    })?;
    BitTarget::new(register, bit)
        .map(Some)
        .ok_or_else(|| Failed::new(USAGE, format!("no bit {bit}: bits are 0..63")))
}

fn fault_kind(kind: &str) -> Result<FaultKind, Failed> {
    FaultKind::parse(kind).ok_or_else(|| {
        let kinds: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
        Failed::new(
            USAGE,
            format!("no fault kind {kind:?}; the kinds: {}", kinds.join(", ")),
        )
    })
}

fn pd_name(s: &str) -> Result<axolotl_control_proto::Name, Failed> {
    name(s).ok_or_else(|| Failed::new(REFUSED, format!("{s:?}: no PD has a name that long")))
}

/// An answer that is not what was asked for.
fn unexpected(r: Reply) -> Failed {
    failed(ClientError::Unexpected(Box::new(r)))
}

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Self {
        failed(e)
    }
}

/// A client error as the command's failure: its exit code and words.
fn failed(e: ClientError) -> Failed {
    let code = match &e {
        ClientError::NoSocket(_) | ClientError::Stopped(_) | ClientError::Io(_) => UNREACHABLE,
        ClientError::NoAnswer { .. } | ClientError::Inconsistent { .. } => NO_ANSWER,
        ClientError::Unexpected(r) if matches!(**r, Reply::Error(_)) => REFUSED,
        ClientError::TooLarge | ClientError::Version { .. } => REFUSED,
        ClientError::Unexpected(_) => NO_ANSWER,
    };
    Failed::new(code, e.to_string())
}

fn state(s: &PdState) -> String {
    match s {
        PdState::Running => "running".into(),
        PdState::Restarting { in_ms } => format!("restart in {in_ms} ms"),
        PdState::Held { reason } => format!("held: {reason}"),
    }
}

fn print_status(rows: &[PdStatus], json: bool) {
    if json {
        println!("{}", serde_json::to_string(rows).unwrap_or_default());
        return;
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header([
        "PD",
        "VM",
        "state",
        "gen",
        "restarts",
        "in window",
        "last cause",
        "recovery",
        "heartbeat",
        "memory",
        "cpu",
    ]);
    for r in rows {
        let window = if r.restart_limit == 0 {
            format!("{}", r.restarts_in_window)
        } else {
            format!("{}/{}", r.restarts_in_window, r.restart_limit)
        };
        let heartbeat = match (r.heartbeat_ms, r.heartbeat_age_ms) {
            (Some(p), Some(age)) => format!("{age} ms ago (every {p} ms)"),
            (Some(p), None) => format!("every {p} ms"),
            _ => "-".into(),
        };
        let name = if r.managed {
            r.name.to_string()
        } else {
            format!("{} (unmanaged)", r.name)
        };
        t.add_row([
            name,
            r.vm.as_deref().unwrap_or("-").to_string(),
            state(&r.state),
            r.generation.to_string(),
            r.restarts.to_string(),
            window,
            r.last_cause.as_deref().unwrap_or("-").to_string(),
            r.last_recovery_us
                .map_or("-".into(), |us| format!("{us} us")),
            heartbeat,
            format!("{} KiB", r.memory_bytes / 1024),
            cpu(r),
        ]);
    }
    println!("{t}");
}

/// A PD's CPU time (and its guest's), or "-" from a kernel that does not count it.
fn cpu(r: &PdStatus) -> String {
    let s = |us: u64| format!("{}.{:03} s", us / 1_000_000, us / 1000 % 1000);
    match (r.cpu_us, r.guest_cpu_us) {
        (Some(own), Some(guest)) => format!("{} (guest {})", s(own), s(guest)),
        (Some(own), None) => s(own),
        _ => "-".into(),
    }
}

fn print_entry(e: &LogEntry, json: bool) {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
        return;
    }
    let what = match e.event {
        Event::Restarted => "restarted",
        Event::Held => "held",
        Event::Released => "released",
        Event::Injected => "injected",
    };
    let latency = e
        .latency_us
        .map_or(String::new(), |us| format!(" in {us} us"));
    println!(
        "#{} {}.{:03} s {} {what} (cause: {}) generation {}{latency}",
        e.seq,
        e.at_ms / 1000,
        e.at_ms % 1000,
        e.pd,
        e.cause,
        e.generation
    );
}

#[cfg(test)]
mod tests;

//! The profiler's plumbing: the images a system runs (their functions and fingerprints),
//! and a thread that stops QEMU through its gdbstub every few milliseconds of host time,
//! reads the PC, CPSR and VTTBR_EL2, learns whose VSpace it stopped in, and lets it run on.
//! What the samples mean is the parent module's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use axolotl_boot_plan::ElfInfo;

use super::{FuncTable, Image, Resolver, Sample, fingerprints, identify};
use crate::campaign::gdb::{self, Gdb, Stop};

/// The images of a system as built: the kernel's functions, each PD's, and the fingerprints
/// that tell their VSpaces apart.
pub struct Images {
    pub kernel: FuncTable,
    pub pds: HashMap<String, FuncTable>,
    pub fingerprints: Vec<super::Fingerprint>,
}

fn read_elf(path: &Path) -> Result<(ElfInfo, Vec<u8>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf =
        ElfInfo::from_bytes(&path.display().to_string(), &bytes).map_err(|e| e.to_string())?;
    Ok((elf, bytes))
}

impl Images {
    /// The images of system `sdf` booted from the kernel image `kernel` (built by
    /// `images::build`): the PDs' ELFs where the build left them, the monitor's (every
    /// system has it), and the root task's copy beside the kernel image (it runs at EL0
    /// too, in a VSpace of its own).
    pub fn load(sdf: &Path, kernel: &Path) -> Result<Images, String> {
        let text = std::fs::read_to_string(sdf).map_err(|e| format!("{}: {e}", sdf.display()))?;
        let board = axolotl_kernel_config::board_by_name("qemu-virt-aarch64", None)
            .ok_or("no qemu-virt-aarch64 board")?;
        let sys = axolotl_sdf::parse(&sdf.display().to_string(), &text, &board)
            .map_err(|d| d.to_string())?;
        let mut elfs: Vec<(String, std::path::PathBuf)> = sys
            .protection_domains
            .iter()
            .map(|p| {
                crate::campaign::inject::Target::built_elf(sdf, &p.name)
                    .map(|e| (p.name.clone(), e))
            })
            .collect::<Result<_, _>>()?;
        let monitor = axolotl_boot_plan::MONITOR_NAME;
        elfs.push((
            monitor.to_string(),
            crate::campaign::inject::Target::built_elf(sdf, monitor)?,
        ));
        elfs.push((
            "root-task".to_string(),
            kernel.with_extension("root-task.elf"),
        ));
        let mut images = Vec::new();
        let mut tables = HashMap::new();
        for (name, path) in &elfs {
            let (elf, bytes) = read_elf(path)?;
            images.push(Image::from_elf(name, &elf, &bytes));
            tables.insert(name.clone(), FuncTable::from_elf(&elf));
        }
        let fingerprints = fingerprints(&images)?;
        // PDs that share an image share its table, under the fingerprint's name.
        let pds = fingerprints
            .iter()
            .filter_map(|f| {
                let first = f.name.split('|').next()?;
                Some((f.name.clone(), tables.get(first)?.clone()))
            })
            .collect();
        Ok(Images {
            kernel: FuncTable::from_elf(&read_elf(kernel)?.0),
            pds,
            fingerprints,
        })
    }

    /// A resolver for what the sampler took.
    pub fn resolver(&self, taken: &Taken, guest: Option<FuncTable>) -> Resolver {
        let mut r = Resolver {
            kernel: self.kernel.clone(),
            pds: self.pds.clone(),
            spaces: taken.spaces.clone(),
            guest_kernel: guest,
            ..Resolver::default()
        };
        r.learn_guest(&taken.samples);
        r
    }
}

/// What a sampling run took.
#[derive(Default)]
pub struct Taken {
    pub samples: Vec<Sample>,
    /// VTTBR_EL2 -> fingerprint name, for each VSpace identified.
    pub spaces: HashMap<u64, String>,
    /// Why sampling ended early, if it did (QEMU exiting at the end is no error).
    pub error: Option<String>,
    /// Per phase: the host time it was sampled for, and of it the time stopped.
    pub host: HashMap<String, (Duration, Duration)>,
}

/// The sampling thread: samples only while a phase is set.
pub struct Sampler {
    phase: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Taken>,
}

/// Times an unidentified VSpace is probed before it is left unidentified (the guest's user
/// space is probed until the guest is seen at EL1 in it).
const PROBES: u32 = 3;

impl Sampler {
    /// Connects to the gdbstub on `port` (QEMU stops the machine when a debugger connects;
    /// the thread lets it run at once) and samples every `interval` of host time.
    pub fn start(port: u16, fps: Vec<super::Fingerprint>, interval: Duration) -> Sampler {
        let phase = Arc::new(Mutex::new(None::<String>));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (phase.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut taken = Taken::default();
            if let Err(e) = sample(port, &fps, interval, &p, &s, &mut taken) {
                taken.error = Some(e);
            }
            taken
        });
        Sampler {
            phase,
            stop,
            thread,
        }
    }

    /// The phase the next samples belong to; `None` stops sampling until the next.
    pub fn phase(&self, p: Option<&str>) {
        *self.phase.lock().unwrap() = p.map(str::to_string);
    }

    /// Ends sampling (the machine is let run on without the debugger) and returns the
    /// samples.
    pub fn finish(self) -> Taken {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|_| Taken {
            error: Some("the sampler panicked".into()),
            ..Taken::default()
        })
    }
}

fn sample(
    port: u16,
    fps: &[super::Fingerprint],
    interval: Duration,
    phase: &Mutex<Option<String>>,
    stop: &AtomicBool,
    taken: &mut Taken,
) -> Result<(), String> {
    let e = |e: gdb::Error| e.to_string();
    let mut g = Gdb::connect(port, Duration::from_secs(120)).map_err(e)?;
    g.supported().map_err(e)?;
    g.halt_reason().map_err(e)?;
    let top = g.features("target.xml").map_err(e)?;
    let mut xmls = vec![top.clone()];
    for inc in gdb::includes(&top) {
        xmls.push(g.features(&inc).map_err(e)?);
    }
    let reg = |n: &str| gdb::regnum(&xmls, n).ok_or(format!("the gdbstub shows no {n}"));
    let (pc_r, cpsr_r, vttbr_r) = (reg("pc")?, reg("cpsr")?, reg("VTTBR_EL2")?);
    let mut probes: HashMap<u64, u32> = HashMap::new();
    let mut guest: std::collections::HashSet<u64> = Default::default();
    g.resume().map_err(e)?;
    loop {
        let round = Instant::now();
        thread::sleep(interval);
        if stop.load(Ordering::SeqCst) {
            // Let the machine finish without the debugger (a `D` needs it stopped).
            if let Ok(Stop::Signal(_)) = g.interrupt() {
                let _ = g.detach();
            }
            return Ok(());
        }
        if phase.lock().unwrap().is_none() {
            continue;
        }
        let stopped_at = Instant::now();
        match g.interrupt() {
            Ok(Stop::Signal(_)) => {}
            // Powered off: the end of the run, no error.
            Ok(Stop::Exited(_)) | Err(gdb::Error::Closed) => return Ok(()),
            Err(x) => return Err(x.to_string()),
        }
        // The phase at the stop: a transfer that ended meanwhile takes no sample.
        let Some(now) = phase.lock().unwrap().clone() else {
            g.resume().map_err(e)?;
            continue;
        };
        let pc = g.read_reg(pc_r).map_err(e)?;
        let el = ((g.read_reg(cpsr_r).map_err(e)? >> 2) & 3) as u8;
        let vttbr = g.read_reg(vttbr_r).map_err(e)?;
        if el == 1 {
            guest.insert(vttbr);
        }
        if el == 0 && !guest.contains(&vttbr) && !taken.spaces.contains_key(&vttbr) {
            let tries = probes.entry(vttbr).or_default();
            if *tries < PROBES {
                *tries += 1;
                // Memory as the stopped CPU sees it: this VSpace's stage 2.
                if let Some(i) = identify(fps, |a, n| g.read_mem(a, n).ok()) {
                    taken.spaces.insert(vttbr, fps[i].name.clone());
                }
            }
        }
        g.resume().map_err(e)?;
        let h = taken.host.entry(now.clone()).or_default();
        h.0 += round.elapsed();
        h.1 += stopped_at.elapsed();
        taken.samples.push(Sample {
            phase: now,
            pc,
            el,
            vttbr,
        });
    }
}

/// A free TCP port on the loopback, for QEMU's gdbstub (QEMU binds it a moment later).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Writes the profiles into `dir` (one file per phase, the samples as CSV, the VSpaces
/// identified) and returns the summary: each phase with its top `top` functions per
/// component. `guest`: the guest kernel's functions, if it sent them.
pub fn report(
    dir: &Path,
    images: &Images,
    taken: &Taken,
    guest: Option<FuncTable>,
    top: usize,
) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let symbolised = guest.is_some();
    let r = images.resolver(taken, guest);
    let mut profiles = super::profiles(&taken.samples, &r);
    let mut summary = String::new();
    for p in &mut profiles {
        p.host = taken.host.get(&p.phase).copied();
        write(&format!("{}.txt", p.phase), &super::render(p, 40, 160))?;
        summary.push_str(&super::render(p, top, 100));
        summary.push('\n');
    }
    write("samples.csv", &super::csv(&taken.samples, &r))?;
    let mut spaces: Vec<String> = r
        .spaces
        .iter()
        .map(|(v, n)| format!("VMID {:>3}  VTTBR_EL2 {v:#018x}  {n}", super::vmid(*v)))
        .chain(r.guest.iter().map(|v| {
            format!(
                "VMID {:>3}  VTTBR_EL2 {v:#018x}  the guest (seen at EL1)",
                super::vmid(*v)
            )
        }))
        .collect();
    spaces.sort();
    write("vspaces.txt", &(spaces.join("\n") + "\n"))?;
    if !symbolised {
        summary.push_str("the guest sent no symbols: its PCs are raw\n");
    }
    if let Some(e) = &taken.error {
        summary.push_str(&format!("sampling ended early: {e}\n"));
    }
    write("summary.txt", &summary)?;
    Ok(summary)
}

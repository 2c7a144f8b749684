//! A sampling profile of a running system (`AXOLOTL_BENCH_IO_PROFILE`, docs/benchmarks.md
//! "Profiling the I/O path"): what a sample is, which component and function it falls in,
//! and the report. The gdbstub plumbing that takes the samples is [`sampler`].
//!
//! A sample is where the CPU was when the sampler stopped it: the PC, the exception level
//! and VTTBR_EL2. EL2 is the kernel. Every PD runs at EL0 with stage 1 off and links at the
//! same address, so the PC alone does not say which PD ran: the VSpace does, and VTTBR_EL2
//! holds the running one's (stage-2 root and VMID). Which PD a VSpace belongs to is learned
//! from its memory, once per VSpace: each image has a [`Fingerprint`], a window of its
//! loaded bytes no other image has at that address, read while stopped in that VSpace. The
//! guest's VSpace is the one seen at EL1 (no PD runs at EL1); its EL0 is the guest's
//! user space.

pub mod sampler;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use axolotl_boot_plan::ElfInfo;

/// One stop of the CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The phase it was taken in (an I/O transfer's name).
    pub phase: String,
    pub pc: u64,
    /// Exception level (CPSR.M[3:2]).
    pub el: u8,
    /// VTTBR_EL2: the VSpace installed (root and VMID).
    pub vttbr: u64,
}

/// VTTBR_EL2's VMID (bits 55:48).
pub fn vmid(vttbr: u64) -> u8 {
    (vttbr >> 48) as u8
}

/// One function's address range.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Func {
    start: u64,
    end: u64,
    name: String,
}

/// An image's functions by address, for symbolising PCs.
#[derive(Clone, Debug, Default)]
pub struct FuncTable {
    /// Sized symbols, sorted by start, overlaps resolved to the innermost (an alias of the
    /// same range is kept once).
    sized: Vec<Func>,
    /// Labels without a size (assembly: vectors, entry code), sorted by address: a PC no
    /// sized symbol covers is named after the nearest label at or before it.
    labels: Vec<(u64, String)>,
    /// The executable ranges: a PC outside them is no function of this image.
    text: Vec<(u64, u64)>,
}

impl FuncTable {
    /// From `(name, address, size)` symbols and the image's executable ranges `(start,
    /// end)`. ARM mapping symbols (`$x`, `$d`) and symbols outside the text are dropped.
    pub fn new(symbols: impl IntoIterator<Item = (String, u64, u64)>, text: &[(u64, u64)]) -> Self {
        let in_text = |a: u64| text.iter().any(|&(s, e)| a >= s && a < e);
        let mut sized = Vec::new();
        let mut labels = Vec::new();
        for (name, addr, size) in symbols {
            if name.starts_with('$') || name.is_empty() || !in_text(addr) {
                continue;
            }
            if size > 0 {
                sized.push(Func {
                    start: addr,
                    end: addr.saturating_add(size),
                    name,
                });
            } else {
                labels.push((addr, name));
            }
        }
        // Sorted by start, the smaller range first, so a lookup that walks back from the
        // last start at or below the PC finds the innermost range; names break ties so the
        // table is the same whatever the symbol order.
        sized.sort_by(|a, b| (a.start, a.end, &a.name).cmp(&(b.start, b.end, &b.name)));
        sized.dedup_by(|b, a| a.start == b.start && a.end == b.end);
        labels.sort();
        labels.dedup_by(|b, a| a.0 == b.0);
        FuncTable {
            sized,
            labels,
            text: text.to_vec(),
        }
    }

    /// The functions of an ELF image.
    pub fn from_elf(elf: &ElfInfo) -> Self {
        let text: Vec<(u64, u64)> = elf
            .segments
            .iter()
            .filter(|s| s.perms.execute && s.memsz > 0)
            .map(|s| (s.vaddr, s.vaddr + s.memsz))
            .collect();
        FuncTable::new(
            elf.symbols.iter().map(|(n, &(a, s))| (n.clone(), a, s)),
            &text,
        )
    }

    /// The guest kernel's functions from its `/proc/kallsyms` text symbols (`ADDR t NAME`,
    /// a module's with `\t[module]` after): no sizes there, so each runs to the next
    /// symbol's address; the last one of the kernel or of a module gets [`KALLSYMS_TAIL`].
    /// Lines that are no text symbol (or say address 0: not shown to this user) are left out.
    pub fn from_kallsyms(text: &str) -> Self {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let addr = u64::from_str_radix(w.next()?, 16)
                    .ok()
                    .filter(|&a| a != 0)?;
                if !matches!(w.next()?, "t" | "T") {
                    return None;
                }
                let name = w.next()?;
                Some((
                    addr,
                    match w.next() {
                        Some(m) => format!("{name} {m}"),
                        None => name.to_string(),
                    },
                ))
            })
            .collect();
        // Of aliases, the first listed (a stable sort keeps the file's order).
        syms.sort_by_key(|s| s.0);
        syms.dedup_by(|b, a| a.0 == b.0);
        let module = |n: &str| n.split(' ').nth(1).map(str::to_string);
        let mut sized = Vec::with_capacity(syms.len());
        for (i, (addr, name)) in syms.iter().enumerate() {
            let end = match syms.get(i + 1) {
                Some((next, n)) if module(n) == module(name) => *next,
                _ => addr + KALLSYMS_TAIL,
            };
            sized.push(Func {
                start: *addr,
                end,
                name: name.clone(),
            });
        }
        let text = sized.iter().map(|f| (f.start, f.end)).collect();
        FuncTable {
            sized,
            labels: Vec::new(),
            text,
        }
    }

    /// The (mangled) name of the function `pc` is in, if the image has one there; for an
    /// unsized label, also the [`LABEL_SLOT`]-aligned offset of `pc` from it.
    pub fn lookup(&self, pc: u64) -> Option<(&str, Option<u64>)> {
        // Ranges starting at or below pc; the innermost one covering it is the latest
        // start whose range still reaches pc (ranges nest or are disjoint in practice).
        let n = self.sized.partition_point(|f| f.start <= pc);
        if let Some(f) = self.sized[..n].iter().rev().take(64).find(|f| pc < f.end) {
            return Some((&f.name, None));
        }
        if !self.text.iter().any(|&(s, e)| pc >= s && pc < e) {
            return None;
        }
        let n = self.labels.partition_point(|l| l.0 <= pc);
        let (addr, name) = &self.labels[n.checked_sub(1)?];
        Some((name, Some((pc - addr) & !(LABEL_SLOT - 1))))
    }

    /// The demangled name of the function `pc` is in (`label+0x480` past an unsized label).
    pub fn name(&self, pc: u64) -> Option<String> {
        let (name, slot) = self.lookup(pc)?;
        let name = demangle(name);
        Some(match slot {
            Some(off) => format!("{name}+{off:#x}"),
            None => name,
        })
    }
}

/// How far the last symbol of the guest kernel or of a module is taken to reach.
pub const KALLSYMS_TAIL: u64 = 0x1000;

/// An unsized label covers assembly up to the next symbol: the kernel's exception vectors
/// and the entry and exit paths inline in them. PCs past one are told apart in slots of
/// 128 bytes, an AArch64 vector's size (`exception_vectors+0x400`: a synchronous exception
/// from a lower EL, e.g. a PD's system call or the guest's exit; `+0x480`: an interrupt
/// from a lower EL).
pub const LABEL_SLOT: u64 = 0x80;

/// A Rust legacy-mangled symbol (`_ZN` length-prefixed path `E`) as a path, without the
/// hash segment; anything else (C names, v0 `_R` names) as it is.
pub fn demangle(name: &str) -> String {
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_string();
    };
    let mut parts: Vec<String> = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('E') {
            // A suffix after the path (`.llvm.123`, `.cold`) is kept as rustc-demangle does.
            let mut out = parts.join("::");
            out.push_str(after);
            return out;
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Some(len) = rest[..digits].parse::<usize>().ok() else {
            return name.to_string();
        };
        let Some(ident) = rest.get(digits..digits + len) else {
            return name.to_string();
        };
        rest = &rest[digits + len..];
        let is_hash = ident.len() == 17
            && ident.starts_with('h')
            && ident[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if is_hash && rest.starts_with('E') {
            continue;
        }
        parts.push(unescape_ident(ident));
    }
}

/// A legacy identifier's escapes: `$LT$` and friends, `$uXX$` code points, `..` for `::`.
fn unescape_ident(ident: &str) -> String {
    // `_$` opens an identifier that starts with an escape: the underscore is no part of it.
    let s = if ident.starts_with("_$") {
        &ident[1..]
    } else {
        ident
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("..") {
            out.push_str("::");
            rest = r;
            continue;
        }
        if rest.starts_with('$')
            && let Some(end) = rest[1..].find('$')
        {
            let code = &rest[1..1 + end];
            let ch = match code {
                "SP" => Some('@'),
                "BP" => Some('*'),
                "RF" => Some('&'),
                "LT" => Some('<'),
                "GT" => Some('>'),
                "LP" => Some('('),
                "RP" => Some(')'),
                "C" => Some(','),
                _ => code
                    .strip_prefix('u')
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32),
            };
            if let Some(ch) = ch {
                out.push(ch);
                rest = &rest[end + 2..];
                continue;
            }
        }
        let ch = rest.chars().next().unwrap_or('?');
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

/// An image as loaded: its name and the bytes of its loadable segments by address.
#[derive(Clone, Debug)]
pub struct Image {
    pub name: String,
    /// `(address, file bytes)` of each loadable segment, executable ones marked.
    pub segments: Vec<(u64, Vec<u8>, bool)>,
}

impl Image {
    pub fn from_elf(name: &str, elf: &ElfInfo, bytes: &[u8]) -> Image {
        Image {
            name: name.to_string(),
            segments: elf
                .segments
                .iter()
                .filter(|s| s.filesz > 0)
                .filter_map(|s| {
                    let b = bytes.get(s.offset as usize..(s.offset + s.filesz) as usize)?;
                    Some((s.vaddr, b.to_vec(), s.perms.execute))
                })
                .collect(),
        }
    }

    /// The image's bytes at `addr..addr + len`, if one segment holds them all.
    fn at(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.segments.iter().find_map(|(base, b, _)| {
            let off = usize::try_from(addr.checked_sub(*base)?).ok()?;
            b.get(off..off.checked_add(len)?)
        })
    }
}

/// Bytes an image has at an address where no other image has the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// The PDs whose image it is (several when they run the same image: one name,
    /// `a|b`, since their code cannot tell them apart).
    pub name: String,
    pub addr: u64,
    pub bytes: Vec<u8>,
}

/// The window a fingerprint compares.
pub const FINGERPRINT_BYTES: usize = 32;

/// One fingerprint per distinct image: the first window of its code whose bytes no other
/// image has at that address (its own data and padding are not used: zero-filled pages
/// match anything unloaded). Images with identical code share one, named by all of them.
pub fn fingerprints(images: &[Image]) -> Result<Vec<Fingerprint>, String> {
    let mut distinct: Vec<(String, &Image)> = Vec::new();
    for img in images {
        let text = |i: &Image| -> Vec<(u64, Vec<u8>)> {
            i.segments
                .iter()
                .filter(|s| s.2)
                .map(|s| (s.0, s.1.clone()))
                .collect()
        };
        match distinct.iter_mut().find(|(_, d)| text(d) == text(img)) {
            Some((name, _)) => {
                name.push('|');
                name.push_str(&img.name);
            }
            None => distinct.push((img.name.clone(), img)),
        }
    }
    let mut out = Vec::new();
    for (i, (name, img)) in distinct.iter().enumerate() {
        let found = img
            .segments
            .iter()
            .filter(|s| s.2)
            .flat_map(|(base, bytes, _)| {
                bytes
                    .chunks_exact(FINGERPRINT_BYTES)
                    .enumerate()
                    .map(move |(k, w)| (base + (k * FINGERPRINT_BYTES) as u64, w))
            })
            .find(|(addr, w)| {
                w.iter().any(|&b| b != 0)
                    && distinct
                        .iter()
                        .enumerate()
                        .all(|(j, (_, other))| j == i || other.at(*addr, w.len()) != Some(*w))
            });
        let (addr, w) =
            found.ok_or_else(|| format!("{name}: no code window that no other image has"))?;
        out.push(Fingerprint {
            name: name.clone(),
            addr,
            bytes: w.to_vec(),
        });
    }
    Ok(out)
}

/// Which fingerprint the stopped VSpace shows, reading its memory with `read` (`None`: not
/// readable there): the index of the one match, or `None` if none or several match.
pub fn identify(
    fps: &[Fingerprint],
    mut read: impl FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Option<usize> {
    let mut hit = None;
    for (i, f) in fps.iter().enumerate() {
        if read(f.addr, f.bytes.len()).as_deref() == Some(f.bytes.as_slice()) {
            if hit.is_some() {
                return None;
            }
            hit = Some(i);
        }
    }
    hit
}

/// What a sample is attributed to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Kernel,
    /// The guest's kernel (EL1 of the VM's VSpace).
    GuestKernel,
    /// The guest's user space (EL0 of the VM's VSpace).
    GuestUser,
    /// A native PD (EL0), by name.
    Pd(String),
    /// EL0 of a VSpace no fingerprint matched: its VMID.
    Unknown(u8),
}

impl Component {
    pub fn label(&self) -> String {
        match self {
            Component::Kernel => "kernel (EL2)".into(),
            Component::GuestKernel => "guest (EL1)".into(),
            Component::GuestUser => "guest user (EL0)".into(),
            Component::Pd(n) => format!("{n} (EL0)"),
            Component::Unknown(v) => format!("VMID {v} (EL0, unidentified)"),
        }
    }
}

/// How samples are named: the images' functions and the VSpaces learned while sampling.
#[derive(Default)]
pub struct Resolver {
    pub kernel: FuncTable,
    /// By fingerprint name (one table for PDs that share an image).
    pub pds: HashMap<String, FuncTable>,
    /// VTTBR_EL2 -> fingerprint name, as identified while stopped in that VSpace.
    pub spaces: HashMap<u64, String>,
    /// VTTBR_EL2 values seen at EL1: the guest's.
    pub guest: HashSet<u64>,
    /// The guest kernel's functions, if it sent them.
    pub guest_kernel: Option<FuncTable>,
}

impl Resolver {
    /// The guest's VSpaces are those seen at EL1: learned from all samples.
    pub fn learn_guest(&mut self, samples: &[Sample]) {
        self.guest
            .extend(samples.iter().filter(|s| s.el == 1).map(|s| s.vttbr));
    }

    /// Whose VSpace `vttbr` is (for EL0 samples, and for naming the VSpace the kernel
    /// runs in).
    fn space(&self, vttbr: u64) -> Component {
        if self.guest.contains(&vttbr) {
            Component::GuestUser
        } else if let Some(n) = self.spaces.get(&vttbr) {
            Component::Pd(n.clone())
        } else {
            Component::Unknown(vmid(vttbr))
        }
    }

    pub fn component(&self, s: &Sample) -> Component {
        match s.el {
            2 | 3 => Component::Kernel,
            1 => Component::GuestKernel,
            _ => self.space(s.vttbr),
        }
    }

    /// The function a sample is in, demangled; a raw PC where there are no symbols.
    pub fn function(&self, s: &Sample) -> String {
        let table = match self.component(s) {
            Component::Kernel => Some(&self.kernel),
            Component::Pd(n) => self.pds.get(&n),
            Component::GuestKernel => self.guest_kernel.as_ref(),
            _ => None,
        };
        table
            .and_then(|t| t.name(s.pc))
            .unwrap_or_else(|| format!("{:#x}", s.pc))
    }

    /// The VSpace installed while the kernel ran: whose it is.
    fn kernel_space(&self, s: &Sample) -> String {
        match self.space(s.vttbr) {
            Component::GuestUser => "the guest's".into(),
            Component::Pd(n) => n,
            Component::Unknown(v) => format!("VMID {v}"),
            c => c.label(),
        }
    }
}

/// One component's share of a phase.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentShare {
    pub component: Component,
    pub samples: u64,
    /// Functions (or raw PCs) by samples, most first.
    pub functions: Vec<(String, u64)>,
}

/// A phase's profile.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseProfile {
    pub phase: String,
    pub samples: u64,
    /// By samples, most first.
    pub components: Vec<ComponentShare>,
    /// The kernel's samples by the VSpace installed (whose exit, call or interrupt it was
    /// most likely handling: the kernel switches VTTBR_EL2 only to enter another VSpace).
    pub kernel_by_space: Vec<(String, u64)>,
    /// Host time the phase was sampled for, and of it the time the machine was stopped
    /// for the samples (the sampler's, when it knows).
    pub host: Option<(Duration, Duration)>,
}

fn by_count<K: Ord>(m: BTreeMap<K, u64>) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = m.into_iter().collect();
    // Most first; ties in key order, so the report is the same for the same samples.
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The profile of each phase, in the order the phases first appear in `samples`.
pub fn profiles(samples: &[Sample], r: &Resolver) -> Vec<PhaseProfile> {
    let mut order: Vec<&str> = Vec::new();
    for s in samples {
        if !order.contains(&s.phase.as_str()) {
            order.push(&s.phase);
        }
    }
    order
        .into_iter()
        .map(|phase| {
            let mut comps: BTreeMap<Component, BTreeMap<String, u64>> = BTreeMap::new();
            let mut spaces: BTreeMap<String, u64> = BTreeMap::new();
            let mut total = 0;
            for s in samples.iter().filter(|s| s.phase == phase) {
                total += 1;
                let c = r.component(s);
                if c == Component::Kernel {
                    *spaces.entry(r.kernel_space(s)).or_default() += 1;
                }
                *comps
                    .entry(c)
                    .or_default()
                    .entry(r.function(s))
                    .or_default() += 1;
            }
            let mut components: Vec<ComponentShare> = comps
                .into_iter()
                .map(|(component, f)| ComponentShare {
                    samples: f.values().sum(),
                    functions: by_count(f),
                    component,
                })
                .collect();
            components.sort_by(|a, b| {
                b.samples
                    .cmp(&a.samples)
                    .then_with(|| a.component.cmp(&b.component))
            });
            PhaseProfile {
                phase: phase.to_string(),
                samples: total,
                components,
                kernel_by_space: by_count(spaces),
                host: None,
            }
        })
        .collect()
}

fn pct(n: u64, of: u64) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// A function name cut to `max` characters (the start kept: the path says whose it is).
fn cut(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// A phase as text: the components, then each one's top `top` functions (percentages of
/// the phase's samples).
pub fn render(p: &PhaseProfile, top: usize, width: usize) -> String {
    let mut o = String::new();
    let _ = write!(o, "{}: {} samples", p.phase, p.samples);
    if let Some((host, stopped)) = p.host {
        let _ = write!(
            o,
            " in {:.1} s of host time (stopped for them {:.0}% of it)",
            host.as_secs_f64(),
            100.0 * stopped.as_secs_f64() / host.as_secs_f64().max(1e-9)
        );
    }
    o.push('\n');
    let _ = writeln!(o, "  {:>6} {:>7}  component", "%", "samples");
    for c in &p.components {
        let _ = writeln!(
            o,
            "  {:>6.1} {:>7}  {}",
            pct(c.samples, p.samples),
            c.samples,
            c.component.label()
        );
    }
    if !p.kernel_by_space.is_empty() {
        let spaces: Vec<String> = p
            .kernel_by_space
            .iter()
            .map(|(s, n)| format!("{s} {:.1}%", pct(*n, p.samples)))
            .collect();
        let _ = writeln!(o, "  kernel by the VSpace installed: {}", spaces.join(", "));
    }
    for c in &p.components {
        let _ = writeln!(
            o,
            "  {} ({:.1}%):",
            c.component.label(),
            pct(c.samples, p.samples)
        );
        for (f, n) in c.functions.iter().take(top) {
            let _ = writeln!(
                o,
                "    {:>6.1} {:>7}  {}",
                pct(*n, p.samples),
                n,
                cut(f, width)
            );
        }
        if c.functions.len() > top {
            let rest: u64 = c.functions[top..].iter().map(|f| f.1).sum();
            let _ = writeln!(
                o,
                "    {:>6.1} {:>7}  ({} more)",
                pct(rest, p.samples),
                rest,
                c.functions.len() - top
            );
        }
    }
    o
}

/// The samples as CSV (phase, el, vttbr, pc, component, function), for other cuts.
pub fn csv(samples: &[Sample], r: &Resolver) -> String {
    let mut o = String::from("phase,el,vmid,vttbr,pc,component,function\n");
    for s in samples {
        let _ = writeln!(
            o,
            "{},{},{},{:#x},{:#x},\"{}\",\"{}\"",
            s.phase,
            s.el,
            vmid(s.vttbr),
            s.vttbr,
            s.pc,
            r.component(s).label(),
            r.function(s).replace('"', "'")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> FuncTable {
        FuncTable::new(
            [
                ("outer".to_string(), 0x1000, 0x100),
                // Nested: an inlined copy's symbol inside `outer`.
                ("inner".to_string(), 0x1040, 0x10),
                ("$x".to_string(), 0x1000, 0),
                ("vectors".to_string(), 0x2000, 0),
                ("after".to_string(), 0x2800, 0x20),
                ("data_sym".to_string(), 0x9000, 0x8),
            ],
            &[(0x1000, 0x3000)],
        )
    }

    #[test]
    fn lookup_finds_the_innermost_range_then_labels() {
        let t = table();
        let name = |pc| t.name(pc);
        assert_eq!(name(0x1000).as_deref(), Some("outer"));
        assert_eq!(name(0x1044).as_deref(), Some("inner"));
        assert_eq!(name(0x1050).as_deref(), Some("outer"));
        assert_eq!(name(0x10ff).as_deref(), Some("outer"));
        // Past `outer`, no sized symbol and no label before it.
        assert_eq!(name(0x1100), None);
        // After a label, its slot.
        assert_eq!(name(0x2000).as_deref(), Some("vectors+0x0"));
        assert_eq!(name(0x2404).as_deref(), Some("vectors+0x400"));
        assert_eq!(name(0x24fc).as_deref(), Some("vectors+0x480"));
        assert_eq!(name(0x2810).as_deref(), Some("after"));
        assert_eq!(name(0x2820).as_deref(), Some("vectors+0x800"));
        // Outside the text, nothing (the data symbol was dropped).
        assert_eq!(name(0x9000), None);
        assert_eq!(name(0xfff), None);
    }

    #[test]
    fn lookup_is_independent_of_symbol_order() {
        let syms = vec![
            ("b".to_string(), 0x100, 0x10),
            ("a".to_string(), 0x100, 0x10),
            ("c".to_string(), 0x104, 0x4),
        ];
        let mut rev = syms.clone();
        rev.reverse();
        let (t1, t2) = (
            FuncTable::new(syms, &[(0, 0x1000)]),
            FuncTable::new(rev, &[(0, 0x1000)]),
        );
        for pc in [0x100, 0x104, 0x108] {
            assert_eq!(t1.name(pc), t2.name(pc), "{pc:#x}");
        }
        assert_eq!(t1.name(0x100).as_deref(), Some("a"));
        assert_eq!(t1.name(0x105).as_deref(), Some("c"));
    }

    #[test]
    fn demangles_legacy_rust_names() {
        assert_eq!(
            demangle("_ZN14axolotl_kernel4trap5enter17h0123456789abcdefE"),
            "axolotl_kernel::trap::enter"
        );
        assert_eq!(
            demangle(
                "_ZN55_$LT$vmm_pd..pd..Vmm$u20$as$u20$axolotl_pd..Handler$GT$8notified17hffffffffffffffffE"
            ),
            "<vmm_pd::pd::Vmm as axolotl_pd::Handler>::notified"
        );
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0000000000000000E.llvm.42"),
            "core::ptr::drop_in_place.llvm.42"
        );
        // Not legacy Rust: as it is.
        assert_eq!(demangle("memcpy"), "memcpy");
        assert_eq!(demangle("_RNvCs123_4core3foo"), "_RNvCs123_4core3foo");
        // Malformed: as it is, no panic.
        assert_eq!(demangle("_ZN99abcE"), "_ZN99abcE");
        assert_eq!(demangle("_ZN3ab"), "_ZN3ab");
        assert_eq!(demangle("_ZNxE"), "_ZNxE");
    }

    fn image(name: &str, code: &[u8]) -> Image {
        Image {
            name: name.to_string(),
            segments: vec![
                (0x20_0000, code.to_vec(), true),
                (0x30_0000, vec![0; 64], false),
            ],
        }
    }

    /// Three images sharing their first 64 bytes (the common entry code), differing after.
    fn images() -> Vec<Image> {
        let common = [0xaau8; 64];
        (0..3u8)
            .map(|i| {
                let mut code = common.to_vec();
                code.extend(std::iter::repeat_n(i + 1, 64));
                image(&format!("pd{i}"), &code)
            })
            .collect()
    }

    #[test]
    fn fingerprints_skip_shared_code_and_identify_each_image() {
        let imgs = images();
        let fps = fingerprints(&imgs).unwrap();
        assert_eq!(fps.len(), 3);
        for (i, f) in fps.iter().enumerate() {
            assert_eq!(f.name, format!("pd{i}"));
            assert_eq!(f.addr, 0x20_0000 + 64, "past the shared code");
        }
        for (i, img) in imgs.iter().enumerate() {
            let got = identify(&fps, |a, n| img.at(a, n).map(<[u8]>::to_vec));
            assert_eq!(got, Some(i));
        }
        // A VSpace of none of them (the guest's user space, say): no match.
        assert_eq!(identify(&fps, |_, n| Some(vec![0x55; n])), None);
        assert_eq!(identify(&fps, |_, _| None), None);
        // Memory that shows two images at once is not taken for either.
        let two = [
            Fingerprint {
                name: "a".into(),
                addr: 0x1000,
                bytes: vec![1; 4],
            },
            Fingerprint {
                name: "b".into(),
                addr: 0x2000,
                bytes: vec![2; 4],
            },
        ];
        assert_eq!(identify(&two, |a, n| Some(vec![(a >> 12) as u8; n])), None);
        assert_eq!(
            identify(&two, |a, n| Some(vec![if a == 0x2000 { 2 } else { 0 }; n])),
            Some(1)
        );
    }

    #[test]
    fn pds_running_one_image_share_a_fingerprint() {
        let mut imgs = images();
        let mut twin = imgs[1].clone();
        twin.name = "pd1_twin".into();
        imgs.push(twin);
        let fps = fingerprints(&imgs).unwrap();
        assert_eq!(fps.len(), 3);
        assert_eq!(fps[1].name, "pd1|pd1_twin");
    }

    #[test]
    fn an_image_with_no_window_of_its_own_is_an_error() {
        // pd1's code is a prefix of pd0's: every window of it is pd0's too.
        let imgs = vec![image("pd0", &[7u8; 128]), image("pd1", &[7u8; 64])];
        let e = fingerprints(&imgs).unwrap_err();
        assert!(e.contains("pd1"), "{e}");
        // Zero-filled code is never a fingerprint (it matches any unloaded page).
        let imgs = vec![image("pd0", &[0u8; 64]), image("pd1", &[1u8; 64])];
        assert!(fingerprints(&imgs).is_err());
    }

    const GUEST: u64 = (5 << 48) | 0x4000_0000;
    const VMM: u64 = (3 << 48) | 0x4100_0000;
    const BLK: u64 = (4 << 48) | 0x4200_0000;

    fn resolver() -> Resolver {
        let mut r = Resolver {
            kernel: FuncTable::new(
                [
                    (
                        "_ZN6kernel4trap5enter17h0123456789abcdefE".to_string(),
                        0x4008_0000,
                        0x100,
                    ),
                    ("idle".to_string(), 0x4008_1000, 0x10),
                ],
                &[(0x4008_0000, 0x4009_0000)],
            ),
            ..Resolver::default()
        };
        let pd = |name: &str| {
            FuncTable::new(
                [(format!("{name}_main"), 0x20_0000, 0x100)],
                &[(0x20_0000, 0x20_1000)],
            )
        };
        r.pds.insert("vmm".into(), pd("vmm"));
        r.pds.insert("blk_driver".into(), pd("blk"));
        r.spaces.insert(VMM, "vmm".into());
        r.spaces.insert(BLK, "blk_driver".into());
        r
    }

    fn s(phase: &str, el: u8, vttbr: u64, pc: u64) -> Sample {
        Sample {
            phase: phase.into(),
            pc,
            el,
            vttbr,
        }
    }

    #[test]
    fn samples_are_attributed_by_level_and_vspace() {
        let samples = vec![
            // The guest's user space is seen before its kernel: still the guest's.
            s("blk_read", 0, GUEST, 0x40_0000),
            s("blk_read", 1, GUEST, 0xffff_8000_1000_0000),
            s("blk_read", 2, VMM, 0x4008_0010),
            s("blk_read", 2, GUEST, 0x4008_1004),
            s("blk_read", 0, VMM, 0x20_0010),
            s("blk_read", 0, BLK, 0x20_0010),
            // Same PC in another VSpace: another PD's function.
            s("blk_read", 0, BLK, 0x20_0020),
            s("blk_read", 0, (9 << 48) | 0x1000, 0x20_0010),
        ];
        let mut r = resolver();
        r.learn_guest(&samples);
        let c: Vec<Component> = samples.iter().map(|x| r.component(x)).collect();
        assert_eq!(
            c,
            [
                Component::GuestUser,
                Component::GuestKernel,
                Component::Kernel,
                Component::Kernel,
                Component::Pd("vmm".into()),
                Component::Pd("blk_driver".into()),
                Component::Pd("blk_driver".into()),
                Component::Unknown(9),
            ]
        );
        let f: Vec<String> = samples.iter().map(|x| r.function(x)).collect();
        assert_eq!(f[1], "0xffff800010000000");
        assert_eq!(f[2], "kernel::trap::enter");
        assert_eq!(f[3], "idle");
        assert_eq!(f[4], "vmm_main");
        assert_eq!(f[5], "blk_main");
        assert_eq!(f[7], "0x200010");
    }

    #[test]
    fn profiles_count_per_phase_component_and_function() {
        let mut samples = Vec::new();
        for _ in 0..6 {
            samples.push(s("blk_write", 0, BLK, 0x20_0010));
        }
        for _ in 0..3 {
            samples.push(s("blk_write", 2, VMM, 0x4008_0010));
        }
        samples.push(s("blk_write", 2, GUEST, 0x4008_1000));
        samples.push(s("blk_read", 1, GUEST, 0xffff_0000_0000_1000));
        samples.push(s("blk_write", 1, GUEST, 0xffff_0000_0000_1000));
        let mut r = resolver();
        r.learn_guest(&samples);
        let p = profiles(&samples, &r);
        assert_eq!(
            p.iter().map(|x| x.phase.as_str()).collect::<Vec<_>>(),
            ["blk_write", "blk_read"]
        );
        let w = &p[0];
        assert_eq!(w.samples, 11);
        let comps: Vec<(Component, u64)> = w
            .components
            .iter()
            .map(|c| (c.component.clone(), c.samples))
            .collect();
        assert_eq!(
            comps,
            [
                (Component::Pd("blk_driver".into()), 6),
                (Component::Kernel, 4),
                (Component::GuestKernel, 1),
            ]
        );
        assert_eq!(
            w.components[1].functions,
            [
                ("kernel::trap::enter".to_string(), 3),
                ("idle".to_string(), 1)
            ]
        );
        assert_eq!(
            w.kernel_by_space,
            [("vmm".to_string(), 3), ("the guest's".to_string(), 1)]
        );
        assert_eq!(p[1].samples, 1);
        let text = render(w, 1, 40);
        assert!(text.starts_with("blk_write: 11 samples\n"), "{text}");
        let mut timed = w.clone();
        timed.host = Some((Duration::from_millis(2000), Duration::from_millis(500)));
        assert!(render(&timed, 1, 40).starts_with(
            "blk_write: 11 samples in 2.0 s of host time (stopped for them 25% of it)\n"
        ));
        assert!(
            text.contains("  54.5       6  blk_driver (EL0)\n"),
            "{text}"
        );
        assert!(
            text.contains("    27.3       3  kernel::trap::enter\n"),
            "{text}"
        );
        assert!(text.contains("     9.1       1  (1 more)\n"), "{text}");
        assert!(text.contains("kernel by the VSpace installed: vmm 27.3%, the guest's 9.1%"));
        let csv = csv(&samples[..1], &r);
        assert_eq!(
            csv.lines().nth(1),
            Some("blk_write,0,4,0x4000042000000,0x200010,\"blk_driver (EL0)\",\"blk_main\"")
        );
    }

    #[test]
    fn kallsyms_functions_run_to_the_next_symbol() {
        let text = "ffff800008010000 T _text\n\
                    ffff800008010000 t __efistub__text\n\
                    ffff800008010100 T do_one\n\
                    ffff800008010200 D some_data\n\
                    ffff800008010300 t do_two\n\
                    0000000000000000 T hidden\n\
                    ffff800000d00000 t virtblk_done\t[virtio_blk]\n\
                    ffff800000d00100 t virtblk_probe\t[virtio_blk]\n\
                    garbage line\n";
        let t = FuncTable::from_kallsyms(text);
        let name = |pc| t.name(pc);
        assert_eq!(name(0xffff_8000_0801_0000).as_deref(), Some("_text"));
        assert_eq!(name(0xffff_8000_0801_01fc).as_deref(), Some("do_one"));
        // Data symbols are no boundary: do_one runs on to do_two.
        assert_eq!(name(0xffff_8000_0801_0200).as_deref(), Some("do_one"));
        assert_eq!(name(0xffff_8000_0801_0300).as_deref(), Some("do_two"));
        assert_eq!(name(0xffff_8000_0801_12ff).as_deref(), Some("do_two"));
        assert_eq!(name(0xffff_8000_0801_1300), None);
        assert_eq!(
            name(0xffff_8000_00d0_0004).as_deref(),
            Some("virtblk_done [virtio_blk]")
        );
        assert_eq!(
            name(0xffff_8000_00d0_0180).as_deref(),
            Some("virtblk_probe [virtio_blk]")
        );
        assert_eq!(name(0xffff_8000_00d0_1100), None);
        let mut r = resolver();
        r.guest_kernel = Some(t);
        let s = s("blk_read", 1, GUEST, 0xffff_8000_0801_0104);
        assert_eq!(r.function(&s), "do_one");
    }

    #[test]
    fn long_names_are_cut_at_the_end() {
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdefg", 6), "abcde…");
    }
}

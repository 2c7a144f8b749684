//! What the plan, the root task and the board can hold, checked on the SDF with positions, so
//! that `check` refuses everything `build` or the boot would refuse (issue #20).
//!
//! [`check`] runs on the SDF alone (`cargo xtask check`): program images count as empty, so
//! what it finds is a lower bound of what the system needs. [`build_for_board`] (what `cargo
//! xtask build` runs) applies the same rules with the images and the pack's size, so a system
//! whose images tip it over is refused there, still at the SDF element. The limits are the plan's capacities (`model::MAX_*`), kernel-config's
//! ASIDs and RAM, and the root task's CNode and page table: never copies of numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::String;
use std::vec::Vec;

use axolotl_kernel_config::limits::{RESERVED_RAM, USER_ASIDS, kernel_held_ram};
use axolotl_kernel_config::{Board, BuildConfig};
use axolotl_sdf::{self as sdf, Diagnostic, Diagnostics, Span, SystemDescription};

use crate::build::{DEFAULT_IPC_BUFFER, IPC_BUFFER_SYMBOL, LARGE, PAGE, Tables};
use crate::cspace::MAX_DEPENDANT_LINKS;
use crate::model::{self as m, Totals};
use crate::monitor::{MONITOR_NAME, MONITOR_STACK};
use crate::{ElfInfo, PLAN_SIZE_LIMIT};

// The SDF's own limit on PDs leaves room for the monitor in every table sized by PDs.
const _: () = assert!(m::MAX_PDS > sdf::MAX_PDS && m::MAX_IMAGES > sdf::MAX_PDS);

/// Root CNode slots in use before the plan is executed: the initial caps and the untypeds.
const ROOT_SLOTS_BEFORE: u64 =
    axolotl_abi::bootinfo::init_cap::FIRST_UNTYPED + axolotl_abi::bootinfo::MAX_UNTYPED as u64;
/// Slots and bytes the root task takes for itself besides PDs: its service endpoint, the
/// clock's notification, IRQ handler and mints, the standby refresher's thread and IPC buffer
/// frame and the page tables of its scratch mapping.
const ROOT_OWN_SLOTS: u64 = 32;
const ROOT_OWN_BYTES: u64 = 64 << 10;

/// The program images [`check_with_images`] counts, as the builder is given them.
pub struct Images<'a> {
    pub pds: &'a [ElfInfo],
    pub monitor: &'a ElfInfo,
    /// The pack's size: it sits in the kernel image, in RAM the root task never gets.
    pub pack_bytes: u64,
}

/// Diagnostics for everything in `sd` the plan, the root task or `board` cannot hold, with
/// program images counted as empty. Errors only.
pub fn check(sd: &SystemDescription, board: &Board) -> Vec<Diagnostic> {
    check_with_images(sd, board, None)
}

/// [`axolotl_sdf::check`], then [`check`]: every rule `cargo xtask check` applies.
pub fn check_text(file_name: &str, text: &str, board: &Board) -> Result<sdf::Checked, Diagnostics> {
    let checked = sdf::check(file_name, text, board)?;
    finish(checked)
}

/// [`check_text`] on a file.
pub fn check_file(path: &std::path::Path, board: &Board) -> Result<sdf::Checked, Diagnostics> {
    let checked = sdf::check_file(path, board)?;
    finish(checked)
}

/// The plan's rules against the board the check chose (its console where the system leaves
/// it: `axolotl_sdf::console`), which is the board the image is built for.
fn finish(checked: sdf::Checked) -> Result<sdf::Checked, Diagnostics> {
    let errs = check(&checked.system, &checked.board);
    if errs.is_empty() {
        return Ok(checked);
    }
    let mut all: Vec<Diagnostic> = checked.warnings.iter().cloned().collect();
    all.extend(errs);
    Err(Diagnostics::from(all))
}

struct Cx<'a> {
    sd: &'a SystemDescription,
    out: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn error(&mut self, at: Span, rule: &'static str, msg: String) {
        self.out
            .push(Diagnostic::error(&self.sd.file, at, rule, msg));
    }

    /// Reports the element that takes a table past its capacity, once per table.
    fn count(&mut self, n: &mut usize, add: usize, limit: usize, at: Span, what: &str) {
        let before = *n;
        *n = n.saturating_add(add);
        if before <= limit && *n > limit {
            let msg = format!("more {what} than the boot plan holds ({limit})");
            self.error(at, "plan-capacity", msg);
        }
    }
}

/// What the root task builds for one PD (and its standby), in objects, tracked pages and root
/// CNode slots.
#[derive(Default)]
struct Cost {
    totals: Totals,
    pages: u64,
    slots: u64,
    vspaces: u64,
}

impl Cost {
    fn bytes(&self) -> u64 {
        self.totals.bytes()
    }
}

/// What `cargo xtask build --system` runs: [`check_with_images`] (the SDF against the plan's,
/// the root task's and `board`'s capacities, the images and the pack counted), then
/// [`crate::build_with_monitor`]. Every problem of both; a plan only without any.
pub fn build_for_board(
    sd: &SystemDescription,
    images: &[ElfInfo],
    monitor: &ElfInfo,
    board: &Board,
    pack_bytes: u64,
) -> Result<m::BootPlan, Vec<crate::BuildError>> {
    let with = Images {
        pds: images,
        monitor,
        pack_bytes,
    };
    let mut errs: Vec<crate::BuildError> = check_with_images(sd, board, Some(&with))
        .into_iter()
        .map(crate::BuildError::Sdf)
        .collect();
    match crate::build_with_monitor(sd, images, monitor) {
        Ok(plan) if errs.is_empty() => Ok(plan),
        Ok(_) => Err(errs),
        Err(more) => {
            for e in more {
                if !errs.contains(&e) {
                    errs.push(e);
                }
            }
            Err(errs)
        }
    }
}

/// `check` with the program images when the builder has them.
pub fn check_with_images(
    sd: &SystemDescription,
    board: &Board,
    images: Option<&Images>,
) -> Vec<Diagnostic> {
    let mut cx = Cx {
        sd,
        out: Vec::new(),
    };
    let all = sd.all_pds();
    let pack = images.map_or(0, |i| i.pack_bytes);
    tables(&mut cx, &all);
    fixed_regions(&mut cx, board, &all, pack);
    generation_table(&mut cx, &all);

    // The monitor's share: added by the builder to every system.
    let monitor_image = images.map(|i| i.monitor);
    let mut need = pd_cost(sd, None, monitor_image, false);
    need.slots += PLAN_SIZE_LIMIT.div_ceil(PAGE as usize) as u64 + ROOT_OWN_SLOTS;
    need.totals.small_frames += PLAN_SIZE_LIMIT.div_ceil(PAGE as usize) as u64;
    need.totals.page_tables += 2;
    // All RAM ranges: frames and objects are small next to them, so what the ranges hold
    // together is what the root task can allocate.
    let ram = board
        .ram_bytes()
        .saturating_sub(RESERVED_RAM)
        .saturating_sub(pack)
        .saturating_sub(ROOT_OWN_BYTES);
    let slots = (1u64 << BuildConfig::DEFAULT.root_cnode_bits).saturating_sub(ROOT_SLOTS_BEFORE);
    let max_pages = m::MAX_PD_PAGES as u64;
    let asids = USER_ASIDS as u64;
    let mut reported = BTreeSet::new();
    let mut over = |cx: &mut Cx, need: &Cost, at: Span, what: &str| {
        let limits = [
            (
                "memory",
                need.bytes(),
                ram,
                "bytes of RAM",
                "the board leaves it (its RAM less what the kernel, the root task and the pack keep)",
            ),
            (
                "root-slots",
                need.slots,
                slots,
                "slots of the root task's CNode",
                "it has",
            ),
            (
                "pd-pages",
                need.pages,
                max_pages,
                "PD pages to restore",
                "the root task keeps",
            ),
            (
                "asids",
                need.vspaces,
                asids,
                "ASIDs",
                "the kernel has for it",
            ),
        ];
        for (rule, got, limit, unit, of) in limits {
            if got > limit && reported.insert(rule) {
                let msg = format!(
                    "with {what} the system needs {got} {unit}, more than the {limit} {of}{}",
                    if images.is_none() && rule != "asids" {
                        " (program images not counted)"
                    } else {
                        ""
                    }
                );
                cx.error(at, rule, msg);
            }
        }
    };

    // Regions first, in file order: one larger than the board is reported where it is.
    for mr in &sd.memory_regions {
        let frames = mr.size.div_ceil(mr.page_size.max(1));
        // A region at a fixed RAM address is carved from the RAM the others come from.
        let in_ram = mr
            .phys_addr
            .is_some_and(|pa| board.ram_contains(pa, pa.saturating_add(1)));
        if mr.phys_addr.is_none() || in_ram {
            if mr.page_size == LARGE {
                need.totals.large_frames = need.totals.large_frames.saturating_add(frames);
            } else {
                need.totals.small_frames = need.totals.small_frames.saturating_add(frames);
            }
        }
        need.slots = need.slots.saturating_add(frames);
        if mr.prefill.is_some() {
            // The scratch slot the root task copies the prefill bytes through.
            need.slots += 1;
        }
        if mr.phys_addr.is_some() {
            // The untypeds that carve device memory or RAM up to the region's address: at
            // most one per address bit.
            need.slots += 64;
        }
        over(
            &mut cx,
            &need,
            mr.span,
            &format!("memory region `{}`", mr.name),
        );
    }
    for pd in &all {
        let elf = images.and_then(|i| i.pds.iter().find(|e| e.path == pd.program_image.path));
        let c = pd_cost(sd, Some(pd), elf, true);
        need.totals.add(&c.totals);
        need.pages = need.pages.saturating_add(c.pages);
        need.slots = need.slots.saturating_add(c.slots);
        need.vspaces += c.vspaces;
        over(
            &mut cx,
            &need,
            pd.span,
            &format!("protection domain `{}`", pd.name),
        );
    }
    // The root task maps an alias of every PD page in its own VSpace: a table per 2 MiB.
    let alias_tables = need.pages.div_ceil(512) + need.pages.div_ceil(512 * 512) + 1;
    need.totals.page_tables = need.totals.page_tables.saturating_add(alias_tables);
    need.slots = need.slots.saturating_add(alias_tables);
    over(&mut cx, &need, sd.span, "the whole system");
    cx.out
}

/// The plan's tables (`model::MAX_*`): each overflow reported at the element that causes it.
fn tables(cx: &mut Cx, all: &[&sdf::ProtectionDomain]) {
    let sd = cx.sd;
    for pd in all {
        if pd.name == MONITOR_NAME {
            cx.error(
                pd.span,
                "reserved-name",
                "`monitor` is the name of the PD axolotl adds to every system".into(),
            );
        }
    }
    let long = |s: &str, max: usize| s.len() > max;
    for pd in all {
        if long(&pd.name, m::MAX_NAME) {
            let msg = format!("name of `{}` is longer than {} bytes", pd.name, m::MAX_NAME);
            cx.error(pd.span, "name-length", msg);
        }
        if long(&pd.program_image.path, m::MAX_PATH) {
            let msg = format!("program image path is longer than {} bytes", m::MAX_PATH);
            cx.error(pd.program_image.span, "name-length", msg);
        }
        if let Some(vm) = &pd.virtual_machine
            && long(&vm.name, m::MAX_NAME)
        {
            let msg = format!("name of `{}` is longer than {} bytes", vm.name, m::MAX_NAME);
            cx.error(vm.span, "name-length", msg);
        }
    }
    for mr in &sd.memory_regions {
        if long(&mr.name, m::MAX_NAME) {
            let msg = format!("name of `{}` is longer than {} bytes", mr.name, m::MAX_NAME);
            cx.error(mr.span, "name-length", msg);
        }
    }

    let mut images = BTreeSet::new();
    // The monitor's image is one more.
    let mut n_images = 1;
    let (mut maps, mut irqs, mut setvars, mut depends) = (0, 0, 0, 0);
    let (mut vms, mut vcpus) = (0, 0);
    for pd in all {
        if images.insert(pd.program_image.path.as_str()) {
            cx.count(
                &mut n_images,
                1,
                m::MAX_IMAGES,
                pd.program_image.span,
                "program images",
            );
        }
        for map in &pd.maps {
            cx.count(&mut maps, 1, m::MAX_MAPPINGS, map.span, "maps");
            if map.setvar_vaddr.is_some() {
                cx.count(&mut setvars, 1, m::MAX_SETVARS, map.span, "setvars");
            }
        }
        for sv in &pd.setvars {
            cx.count(&mut setvars, 1, m::MAX_SETVARS, sv.span, "setvars");
        }
        for irq in &pd.irqs {
            cx.count(&mut irqs, 1, m::MAX_IRQS, irq.span, "IRQs");
        }
        let deps = pd.resilience.depends_on.len();
        cx.count(
            &mut depends,
            deps,
            m::MAX_DEPENDS,
            pd.span,
            "depends_on entries",
        );
        if let Some(vm) = &pd.virtual_machine {
            cx.count(&mut vms, 1, m::MAX_VMS, vm.span, "virtual machines");
            for v in &vm.vcpus {
                cx.count(&mut vcpus, 1, m::MAX_VCPUS, v.span, "vCPUs");
            }
            for map in &vm.maps {
                cx.count(&mut maps, 1, m::MAX_MAPPINGS, map.span, "maps");
            }
        }
    }
    let mut regions = 0;
    for mr in &sd.memory_regions {
        cx.count(&mut regions, 1, m::MAX_REGIONS, mr.span, "memory regions");
    }
    let mut channels = 0;
    for ch in &sd.channels {
        cx.count(&mut channels, 1, m::MAX_CHANNELS, ch.span, "channels");
    }

    // CSpace entries: per PD its own four, the channel ends that notify or call, IRQs,
    // children and vCPUs (two each); the monitor's come last.
    let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
    for ch in &sd.channels {
        for e in &ch.ends {
            *ends.entry(e.pd.as_str()).or_default() += e.notify as usize + e.pp as usize;
        }
    }
    let mut caps = 0;
    for pd in all {
        let own = 4
            + pd.cnode_cap as usize
            + ends.get(pd.name.as_str()).copied().unwrap_or(0)
            + pd.irqs.len()
            + pd.children.len()
            + pd.virtual_machine
                .as_ref()
                .map_or(0, |vm| 2 * vm.vcpus.len());
        cx.count(&mut caps, own, m::MAX_CAPS, pd.span, "capabilities");
    }

    // The monitor's caps to tell dependants of restarts: one per `depends_on` entry with a
    // channel between the two PDs.
    let linked = |a: &str, b: &str| {
        sd.channels.iter().any(|c| {
            let [x, y] = [&c.ends[0].pd, &c.ends[1].pd];
            (x == a && y == b) || (x == b && y == a)
        })
    };
    let mut links = 0;
    for pd in all {
        let n = pd
            .resilience
            .depends_on
            .iter()
            .filter(|d| linked(&pd.name, d))
            .count();
        let before = links;
        links += n;
        if before <= MAX_DEPENDANT_LINKS && links > MAX_DEPENDANT_LINKS {
            let msg = format!(
                "more `depends_on` entries with a channel than the monitor has slots to tell \
                 them ({MAX_DEPENDANT_LINKS})"
            );
            cx.error(pd.span, "plan-capacity", msg);
        }
    }
    // The monitor pings the top-level PDs with a heartbeat (children answer their parents).
    let watched = sd
        .protection_domains
        .iter()
        .filter(|p| p.resilience.heartbeat_ms.unwrap_or(0) != 0)
        .count();
    let monitor_caps = 5 + watched + links.min(MAX_DEPENDANT_LINKS);
    cx.count(
        &mut caps,
        monitor_caps,
        m::MAX_CAPS,
        sd.span,
        "capabilities",
    );
}

/// Rule `generation-table`: the root task maps its generation table read-only at the same
/// address in every PD (`generations`), so no map or stack may cover that page. (An image
/// over it is the builder's to refuse: `check` has no images.)
fn generation_table(cx: &mut Cx, all: &[&sdf::ProtectionDomain]) {
    use crate::generations::{GENERATION_TABLE_VADDR, overlaps_table};
    for pd in all {
        for mp in &pd.maps {
            let size = cx.sd.memory_region(&mp.mr).map_or(0, |mr| mr.size);
            if overlaps_table(mp.vaddr, size) {
                let msg = format!(
                    "map of `{}` at {:#x} covers the generation table every PD has at \
                     {GENERATION_TABLE_VADDR:#x}",
                    mp.mr, mp.vaddr
                );
                cx.error(mp.span, "generation-table", msg);
            }
        }
        if overlaps_table(pd.stack_bottom(), pd.stack_size) {
            let msg = format!(
                "the stack of `{}` covers the generation table every PD has at \
                 {GENERATION_TABLE_VADDR:#x}",
                pd.name
            );
            cx.error(pd.span, "generation-table", msg);
        }
    }
}

/// Regions at fixed addresses: the root task carves a RAM one out of the untyped that covers
/// it and takes a device one from the device untypeds the kernel hands out, so neither may
/// lie in RAM the kernel and the root task hold from boot on (`phys-kernel`: kernel-config's
/// `kernel_held_ram`, the pack included once `build` knows it) nor, if a PD or VM maps it, on
/// the kernel's console UART or on the GIC's frames other than GICV (`phys-device`): the
/// kernel keeps those pages, which lie inside the device window on the ODROIDs. An unmapped
/// region there only names the address (Microkit's `setvar` example patches a PD with it).
fn fixed_regions(cx: &mut Cx, board: &Board, all: &[&sdf::ProtectionDomain], pack: u64) {
    let held = kernel_held_ram(board, pack);
    let uart = (board.uart_page(), board.uart_page().saturating_add(PAGE));
    let gic = board.kernel_gic_frames();
    let mapped = |name: &str| {
        all.iter().any(|pd| {
            pd.maps.iter().any(|m| m.mr == name)
                || pd
                    .virtual_machine
                    .as_ref()
                    .is_some_and(|vm| vm.maps.iter().any(|m| m.mr == name))
        })
    };
    for mr in &cx.sd.memory_regions {
        let Some(pa) = mr.phys_addr else { continue };
        let r = (pa, pa.saturating_add(mr.size));
        let hits = |w: (u64, u64)| r.0 < w.1 && w.0 < r.1;
        if hits(held) {
            let msg = format!(
                "memory region `{}` at [{:#x}, {:#x}) overlaps [{:#x}, {:#x}), the RAM the kernel \
                 and the root task hold from boot on (the kernel image with the system pack{}, \
                 the root task's objects): place it at {:#x} or above",
                mr.name,
                r.0,
                r.1,
                held.0,
                held.1,
                if pack == 0 {
                    ", counted once `build` knows its size"
                } else {
                    ""
                },
                held.1
            );
            cx.error(mr.span, "phys-kernel", msg);
        } else if hits(uart) && mapped(&mr.name) {
            let msg = format!(
                "memory region `{}` at [{:#x}, {:#x}) is mapped but covers the kernel's console \
                 UART, which the kernel keeps",
                mr.name, r.0, r.1
            );
            cx.error(mr.span, "phys-device", msg);
        } else if let Some(&(lo, hi)) = gic.iter().find(|&&w| w.0 < w.1 && hits(w))
            && mapped(&mr.name)
        {
            let msg = format!(
                "memory region `{}` at [{:#x}, {:#x}) is mapped but covers the GIC's frame \
                 [{lo:#x}, {hi:#x}), which the kernel keeps (of the GIC, only a GICv2's \
                 virtual CPU interface can be mapped)",
                mr.name, r.0, r.1
            );
            cx.error(mr.span, "phys-device", msg);
        }
    }
}

/// The pages the root task loads for `segs`, as it loads them (`root-task/src/system/
/// image.rs`, `Source::pages`): 2 MiB wherever a 2 MiB-aligned stretch lies inside one
/// segment and does not hold the IPC buffer's page, else 4 KiB. `(small, large)` of all of
/// them, then of those a standby shares with the running incarnation
/// ([`m::Perms::shared_by_incarnations`]).
fn image_pages(elf: &ElfInfo, ipc_page: u64) -> ((u64, u64), (u64, u64)) {
    let (mut all, mut shared) = ((0u64, 0u64), (0u64, 0u64));
    for s in elf.segments.iter().filter(|s| s.memsz > 0) {
        let Some(end) = s
            .vaddr
            .checked_add(s.memsz)
            .and_then(|e| e.checked_next_multiple_of(PAGE))
        else {
            continue;
        };
        let mut at = s.vaddr & !(PAGE - 1);
        while at < end {
            let big = at.is_multiple_of(LARGE)
                && at.checked_add(LARGE).is_some_and(|e| e <= end)
                && !(at..at + LARGE).contains(&ipc_page);
            let (count, size) = if big {
                (&mut all.1, LARGE)
            } else {
                (&mut all.0, PAGE)
            };
            *count += 1;
            if s.perms.shares_page(at, size, ipc_page) {
                if big {
                    shared.1 += 1;
                } else {
                    shared.0 += 1;
                }
            }
            at += size;
        }
    }
    (all, shared)
}

/// PD `pd` (`None`: the monitor) with image `elf` if known; `standby` whether it may get a
/// standby incarnation.
fn pd_cost(
    sd: &SystemDescription,
    pd: Option<&sdf::ProtectionDomain>,
    elf: Option<&ElfInfo>,
    standby: bool,
) -> Cost {
    let stack = pd.map_or(MONITOR_STACK, |p| p.stack_size);
    let stack_bottom = axolotl_sdf::PD_STACK_TOP.saturating_sub(stack);
    let mut t = Tables::default();
    t.add(stack_bottom, stack, PAGE);
    let ipc = elf
        .and_then(|e| e.symbol(IPC_BUFFER_SYMBOL))
        .map(|(v, _)| v);
    let (mut small, mut large) = (stack / PAGE, 0);
    let mut shared = (0, 0);
    // An image without Microkit's IPC buffer symbol gets a frame of its own for it; without
    // the image, nothing is assumed (a lower bound).
    if elf.is_some() && ipc.is_none() {
        small += 1;
        t.add(DEFAULT_IPC_BUFFER, PAGE, PAGE);
    }
    if let Some(elf) = elf {
        let ((s, l), sh) = image_pages(elf, ipc.unwrap_or(DEFAULT_IPC_BUFFER) & !(PAGE - 1));
        small += s;
        large += l;
        shared = sh;
        for seg in elf.segments.iter().filter(|s| s.memsz > 0) {
            t.add(seg.vaddr, seg.memsz, PAGE);
        }
    }
    // Region frames are counted once, with the regions; a map costs tables and a root slot
    // per frame (each mapping takes its own copy of the frame cap).
    let mut map_slots = 0u64;
    for map in pd.map_or(&[][..], |p| &p.maps) {
        if let Some(mr) = sd.memory_region(&map.mr) {
            t.add(map.vaddr, mr.size, mr.page_size);
            map_slots = map_slots.saturating_add(mr.size.div_ceil(mr.page_size.max(1)));
        }
    }
    let pages = small + large;
    let one = Totals {
        small_frames: small,
        large_frames: large,
        page_tables: t.count(),
        vspaces: 1,
        cnodes: 1,
        ..Totals::default()
    };
    let mut totals = Totals {
        tcbs: 1,
        endpoints: 1,
        notifications: 1,
        ..one
    };
    // Objects, the fault endpoint's mint, a frame and an alias per page, tables, map copies,
    // and an IRQ handler with its notification's mint per IRQ.
    let per_incarnation = 2 + 2 * pages + one.page_tables + map_slots;
    let mut cost = Cost {
        pages,
        slots: 4 + per_incarnation + 2 * pd.map_or(0, |p| p.irqs.len() as u64),
        vspaces: 1,
        ..Cost::default()
    };
    if let Some(pd) = pd {
        let wants = pd.resilience.restart != sdf::RestartPolicy::Never && pd.resilience.standby;
        if standby && wants {
            // Shared pages: no frame and no alias of their own, a cap copy to map each.
            totals.add(&Totals {
                small_frames: one.small_frames - shared.0,
                large_frames: one.large_frames - shared.1,
                ..one
            });
            cost.pages += pages;
            cost.slots += per_incarnation - shared.0 - shared.1;
            cost.vspaces += 1;
        }
        if let Some(vm) = &pd.virtual_machine {
            let mut vt = Tables::default();
            for map in &vm.maps {
                if let Some(mr) = sd.memory_region(&map.mr) {
                    vt.add(map.vaddr, mr.size, mr.page_size);
                    cost.slots = cost
                        .slots
                        .saturating_add(mr.size.div_ceil(mr.page_size.max(1)));
                }
            }
            let n = vm.vcpus.len() as u64;
            totals.vspaces += 1;
            totals.page_tables = totals.page_tables.saturating_add(vt.count());
            totals.tcbs += n;
            totals.vcpus += n;
            cost.slots = cost.slots.saturating_add(1 + vt.count() + 3 * n);
            cost.vspaces += 1;
        }
    }
    cost.totals = totals;
    cost
}

//! Every board constant checked against the upstream device tree Debian ships in its arm64
//! kernel package (cached by `cargo xtask setup`, docs/guest.md): a wrong address, interrupt,
//! frequency or memory range fails here, not on a board.
//!
//! The device trees speak of bus addresses (the BCM2711's peripherals at 0x7e.., its GIC at
//! 0x4004_1000); every `reg` is translated through its parents' `ranges` to the ARM's
//! physical view that `kernel-config` holds.

use std::path::PathBuf;

use axolotl_kernel_config::{
    Board, ConsoleKind, ConsoleSetup, GicLayout, ODROID_C2, ODROID_C4, RPI4B, RPI4B_1GB, RPI4B_2GB,
    RPI4B_4GB, RPI4B_8GB,
};
use fdt::Fdt;

/// The upstream DTB `vendor/name.dtb`, or `None` (with a line saying so) when setup has not
/// cached the kernel package: the repository's artifact-dependent host tests skip then.
fn upstream_dtb(rel: &str) -> Option<Vec<u8>> {
    let dir = axolotl_guest_artifacts::default_cache_dir();
    let Some(a) = axolotl_guest_artifacts::cached(&dir) else {
        eprintln!(
            "skipped: no guest artifacts in {} (run `cargo xtask setup`): cannot check {rel}",
            dir.display()
        );
        return None;
    };
    let path: PathBuf = a.dtb_dir.join(rel);
    Some(std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the kernel package is cached but has no {rel}",
            path.display()
        )
    }))
}

fn cells(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()) as u64)
        .collect()
}

/// Big-endian number of `n` cells from `c`, advancing it.
fn take(c: &mut &[u64], n: usize) -> u64 {
    let v = c[..n].iter().fold(0u64, |acc, x| (acc << 32) | x);
    *c = &c[n..];
    v
}

fn prop_u32(fdt: &Fdt, path: &str, name: &str) -> Option<u64> {
    let p = fdt.find_node(path)?.property(name)?;
    cells(p.value).first().copied()
}

/// `#address-cells` / `#size-cells` of the node at `path` (defaults 2 and 1).
fn cell_sizes(fdt: &Fdt, path: &str) -> (usize, usize) {
    (
        prop_u32(fdt, path, "#address-cells").unwrap_or(2) as usize,
        prop_u32(fdt, path, "#size-cells").unwrap_or(1) as usize,
    )
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `(child address, parent address, size)` of the `ranges` (or `dma-ranges`) of the bus at
/// `bus`; `None` if it has none, `Some(empty)` for an identity `ranges;`.
fn ranges(fdt: &Fdt, bus: &str, prop: &str) -> Option<Vec<(u64, u64, u64)>> {
    let r = fdt.find_node(bus)?.property(prop)?;
    let (ca, cs) = cell_sizes(fdt, bus);
    let (pa, _) = cell_sizes(fdt, parent(bus));
    let all = cells(r.value);
    let mut c = &all[..];
    let mut out = Vec::new();
    while c.len() >= ca + pa + cs {
        out.push((take(&mut c, ca), take(&mut c, pa), take(&mut c, cs)));
    }
    Some(out)
}

/// `addr` on the bus that holds the node at `path`, in the ARM's physical view: translated
/// through every ancestor's `ranges` up to the root.
fn to_cpu(fdt: &Fdt, path: &str, mut addr: u64) -> u64 {
    let mut bus = parent(path);
    while bus != "/" {
        let r = ranges(fdt, bus, "ranges")
            .unwrap_or_else(|| panic!("{bus} has no ranges: {path} is not CPU-addressable"));
        if !r.is_empty() {
            let &(child, parent_addr, _) = r
                .iter()
                .find(|&&(c, _, s)| addr >= c && addr - c < s)
                .unwrap_or_else(|| panic!("{path}: {addr:#x} is in no range of {bus}"));
            addr = addr - child + parent_addr;
        }
        bus = parent(bus);
    }
    addr
}

/// The node's `reg` entries as `(CPU physical address, size)`.
fn regs(fdt: &Fdt, path: &str) -> Vec<(u64, u64)> {
    let node = fdt
        .find_node(path)
        .unwrap_or_else(|| panic!("no node {path}"));
    let Some(reg) = node.property("reg") else {
        return Vec::new();
    };
    let (ac, sc) = cell_sizes(fdt, parent(path));
    let all = cells(reg.value);
    let mut c = &all[..];
    let mut out = Vec::new();
    while c.len() >= ac + sc && ac > 0 {
        let a = take(&mut c, ac);
        let s = take(&mut c, sc);
        out.push((to_cpu(fdt, path, a), s));
    }
    out
}

/// The GIC INTIDs of a node's `interrupts` (3 cells: SPI/PPI, number, flags).
fn intids(fdt: &Fdt, path: &str) -> Vec<u32> {
    let p = fdt
        .find_node(path)
        .and_then(|n| n.property("interrupts"))
        .unwrap_or_else(|| panic!("{path} has no interrupts"));
    cells(p.value)
        .chunks_exact(3)
        .map(|i| match i[0] {
            0 => 32 + i[1] as u32,
            1 => 16 + i[1] as u32,
            t => panic!("{path}: interrupt type {t}"),
        })
        .collect()
}

fn alias(fdt: &Fdt, name: &str) -> String {
    let p = fdt
        .find_node("/aliases")
        .and_then(|a| a.property(name))
        .unwrap_or_else(|| panic!("no alias {name}"));
    p.as_str().unwrap().trim_end_matches('\0').to_string()
}

/// Every node under `under` (depth first) with its path, walked once: looking each path up
/// again from the root would make the large Amlogic trees quadratic.
fn walk<'b, 'a>(fdt: &'b Fdt<'a>, under: &str) -> Vec<(String, fdt::node::FdtNode<'b, 'a>)> {
    fn go<'b, 'a>(
        node: fdt::node::FdtNode<'b, 'a>,
        path: &str,
        out: &mut Vec<(String, fdt::node::FdtNode<'b, 'a>)>,
    ) {
        for c in node.children() {
            let cp = if path == "/" {
                format!("/{}", c.name)
            } else {
                format!("{path}/{}", c.name)
            };
            out.push((cp.clone(), c));
            go(c, &cp, out);
        }
    }
    let mut out = Vec::new();
    go(fdt.find_node(under).unwrap(), under, &mut out);
    out
}

/// Paths of every node under `under` (depth first).
fn descendants(fdt: &Fdt, under: &str) -> Vec<String> {
    walk(fdt, under).into_iter().map(|(p, _)| p).collect()
}

fn path_of_compatible(fdt: &Fdt, compatible: &str) -> String {
    walk(fdt, "/")
        .into_iter()
        .find(|(_, n)| {
            n.compatible()
                .is_some_and(|c| c.all().any(|s| s == compatible))
        })
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("no node compatible with {compatible}"))
}

fn same_in(bad: &mut Vec<String>, what: &str, board: u64, dt: u64) {
    if board != dt {
        bad.push(format!(
            "{what}: kernel-config says {board:#x}, the DTB {dt:#x}"
        ));
    }
}

/// The GIC-400's frames and the architected timer's PPIs of `b` against `fdt`; the
/// distributor's address (`None` if `b` has no GICv2).
fn gic_and_timer_mismatches(fdt: &Fdt, b: &Board, bad: &mut Vec<String>) -> Option<u64> {
    // The GIC-400: distributor, CPU interface, hypervisor control, virtual CPU interface,
    // in the binding's order; its own interrupt is the virtual GIC's maintenance PPI.
    let gic = path_of_compatible(fdt, "arm,gic-400");
    let r = regs(fdt, &gic);
    assert_eq!(r.len(), 4, "{gic}: a GIC with virtualization extensions");
    let GicLayout::V2 {
        gicd,
        gicc,
        gich,
        gicv,
    } = b.gic
    else {
        bad.push("the GIC-400 is a GICv2".into());
        return None;
    };
    for (what, board, dt) in [
        ("GICD", gicd, r[0].0),
        ("GICC", gicc, r[1].0),
        ("GICH", gich, r[2].0),
        ("GICV", gicv, r[3].0),
    ] {
        same_in(bad, what, board, dt);
    }
    same_in(
        bad,
        "vGIC maintenance PPI",
        b.vgic_maintenance_irq as u64,
        intids(fdt, &gic)[0] as u64,
    );

    // The architected timer's PPIs, in the binding's order: secure physical, non-secure
    // physical, virtual, hypervisor physical.
    let timer = path_of_compatible(fdt, "arm,armv8-timer");
    let t = intids(fdt, &timer);
    same_in(
        bad,
        "EL1 physical timer PPI",
        b.phys_timer_irq as u64,
        t[1] as u64,
    );
    same_in(
        bad,
        "virtual timer PPI",
        b.virt_timer_irq as u64,
        t[2] as u64,
    );
    same_in(
        bad,
        "EL2 physical timer PPI",
        b.hyp_timer_irq as u64,
        t[3] as u64,
    );
    Some(gicd)
}

/// What in `b` disagrees with the BCM2711 device tree `fdt`, one line each.
fn rpi4b_mismatches(fdt: &Fdt, b: &Board) -> Vec<String> {
    let mut bad = Vec::new();
    macro_rules! same {
        ($($a:expr),+ $(,)?) => { same_in(&mut bad, $($a),+) };
    }

    // The console: PL011 UART0, the DT's serial0.
    let uart = alias(fdt, "serial0");
    let compatible = fdt.find_node(&uart).unwrap().compatible().unwrap();
    assert!(
        compatible.all().any(|c| c == "arm,pl011"),
        "{uart} is not a PL011"
    );
    same!("PL011 UART0 base", b.uart_base, regs(fdt, &uart)[0].0);
    same!(
        "PL011 UART0 INTID",
        b.uart_irq as u64,
        intids(fdt, &uart)[0] as u64,
    );

    // UART0's pins: the GPIO block whose function registers the kernel sets; the DT's UART0
    // pin group names GPIO 14/15 at function 4 (ALT0).
    if let ConsoleSetup::Bcm2711Gpio14 { gpio_base, .. } = b.console_setup {
        let gpio = path_of_compatible(fdt, "brcm,bcm2711-gpio");
        same!("GPIO base", gpio_base, regs(fdt, &gpio)[0].0);
        let pins = descendants(fdt, &gpio)
            .into_iter()
            .find(|p| p.ends_with("/uart0_gpio14"))
            .expect("the uart0_gpio14 pin group");
        let n = fdt.find_node(&pins).unwrap();
        let pin_list = cells(n.property("brcm,pins").unwrap().value);
        let func = cells(n.property("brcm,function").unwrap().value);
        assert_eq!(pin_list, [14, 15], "{pins}");
        assert_eq!(func, [4], "{pins}: ALT0 is function 4");
    } else {
        bad.push("the Pi's console needs its pins set".into());
    }

    let Some(gicd) = gic_and_timer_mismatches(fdt, b, &mut bad) else {
        return bad;
    };
    // The generic timer counts the 54 MHz crystal, the DT's fixed clock `osc` (the timer node
    // itself names no frequency: the firmware's armstub programs CNTFRQ with it).
    let osc = descendants(fdt, "/")
        .into_iter()
        .find(|p| {
            let n = fdt.find_node(p).unwrap();
            n.compatible()
                .is_some_and(|c| c.all().any(|s| s == "fixed-clock"))
                && n.property("clock-output-names").and_then(|n| n.as_str()) == Some("osc")
        })
        .expect("the fixed clock `osc`");
    same!(
        "timer frequency",
        b.timer_hz,
        prop_u32(fdt, &osc, "clock-frequency").unwrap(),
    );

    // Devices: the window is exactly the SoC's peripheral ranges other than the ARM local
    // block the GIC sits in, and every SoC device is in the window or in that block.
    let soc = "/soc";
    let mut windows: Vec<(u64, u64)> = ranges(fdt, soc, "ranges")
        .unwrap()
        .iter()
        .map(|&(_, p, s)| (p, p + s))
        .collect();
    windows.sort();
    let local = *windows
        .iter()
        .find(|&&(lo, hi)| gicd >= lo && gicd < hi)
        .expect("the GIC in a /soc range");
    let periph: Vec<_> = windows.iter().copied().filter(|&w| w != local).collect();
    let contiguous = periph.windows(2).all(|w| w[0].1 == w[1].0);
    assert!(contiguous, "/soc peripheral ranges {periph:x?}");
    same!(
        "device window start",
        b.device_window.0,
        periph.first().unwrap().0,
    );
    same!(
        "device window end",
        b.device_window.1,
        periph.last().unwrap().1,
    );
    for dev in descendants(fdt, soc) {
        if parent(&dev) != soc {
            continue;
        }
        for (addr, size) in regs(fdt, &dev) {
            let inside = |(lo, hi): (u64, u64)| addr >= lo && addr + size <= hi;
            if !inside(b.device_window) && !inside(local) {
                bad.push(format!(
                    "{dev} at {addr:#x} is outside the device window {:x?}",
                    b.device_window
                ));
            }
        }
    }

    // RAM: the memory node starts at 0, but its size, and every range past the first, is
    // the firmware's (the node is `reg = <0 0 0>`): the models' figures are seL4's
    // (kernel-config's `RPI4B_RAM_*`). What the tree does say is checked: the first range,
    // which every model has, starts at 0 inside the first GiB the SoC's DMA reaches (/soc
    // dma-ranges); no range meets a bus window (the peripherals and the ARM local block under
    // 4 GiB, the PCIe window at 24 GiB); a range reaching into the GiB below the peripherals
    // ends where they begin (the 4 and 8 GiB boards: "low peripheral" mode hides the RAM
    // under them); all lie in whole 2 MiB blocks, sorted, apart, below the kernel's 40-bit
    // physical address space.
    let mem = regs(fdt, "/memory@0");
    let first = b.ram.first().copied().unwrap_or((u64::MAX, u64::MAX));
    same!("RAM base", first.0, mem[0].0);
    let dma = ranges(fdt, soc, "dma-ranges").unwrap();
    let &(_, dma_cpu, dma_size) = dma.first().expect("/soc dma-ranges");
    if first.0 < dma_cpu || first.1 > dma_cpu + dma_size {
        bad.push(format!(
            "RAM {:#x}..{:#x} beyond the first GiB the SoC's DMA reaches ({dma_cpu:#x}+{dma_size:#x})",
            first.0, first.1
        ));
    }
    let mut buses: Vec<(u64, u64)> = children(fdt, "/")
        .iter()
        .filter_map(|bus| ranges(fdt, bus, "ranges"))
        .flatten()
        .map(|(_, cpu, size)| (cpu, cpu + size))
        .collect();
    buses.sort();
    let lowest_bus = buses.first().expect("bus windows").0;
    for &(lo, hi) in b.ram {
        for &(wlo, whi) in &buses {
            if lo < whi && wlo < hi {
                bad.push(format!(
                    "RAM {lo:#x}..{hi:#x} meets the bus window {wlo:#x}..{whi:#x}"
                ));
            }
        }
        if hi > lowest_bus & !((1 << 30) - 1) && hi < lowest_bus {
            bad.push(format!(
                "RAM {lo:#x}..{hi:#x} stops short of the peripherals at {lowest_bus:#x}"
            ));
        }
        if lo >= hi || lo % (2 << 20) != 0 || hi % (2 << 20) != 0 {
            bad.push(format!("RAM {lo:#x}..{hi:#x} is not whole 2 MiB blocks"));
        }
        if hi > 1 << axolotl_kernel_config::PHYS_ADDR_BITS {
            bad.push(format!(
                "RAM {lo:#x}..{hi:#x} beyond 40-bit physical addresses"
            ));
        }
    }
    if b.ram.windows(2).any(|w| w[0].1 >= w[1].0) {
        bad.push(format!(
            "RAM ranges {:x?} overlap or are out of order",
            b.ram
        ));
    }
    // The kernel's load address is past the spin table the secondary cores wait on (left
    // alone: they stay parked).
    let cpus: Vec<String> = descendants(fdt, "/cpus")
        .into_iter()
        .filter(|p| parent(p) == "/cpus" && p.starts_with("/cpus/cpu@"))
        .collect();
    assert_eq!(cpus.len(), 4, "{cpus:?}");
    for cpu in &cpus {
        let node = fdt.find_node(cpu).unwrap();
        let method = node.property("enable-method").and_then(|p| p.as_str());
        assert_eq!(method, Some("spin-table"), "{cpu}");
        let release = cells(node.property("cpu-release-addr").unwrap().value);
        let release = (release[0] << 32) | release[1];
        if release + 8 > b.kernel_load {
            bad.push(format!(
                "{cpu}'s spin table at {release:#x} is inside the kernel at {:#x}",
                b.kernel_load
            ));
        }
    }
    bad
}

#[test]
fn rpi4b_matches_bcm2711_rpi_4_b_dtb() {
    let Some(dtb) = upstream_dtb("broadcom/bcm2711-rpi-4-b.dtb") else {
        return;
    };
    let fdt = Fdt::new(&dtb).expect("a valid DTB");
    for b in [RPI4B, RPI4B_1GB, RPI4B_2GB, RPI4B_4GB, RPI4B_8GB] {
        let bad = rpi4b_mismatches(&fdt, &b);
        assert!(
            bad.is_empty(),
            "{} disagrees with the DTB:\n{}",
            b.name,
            bad.join("\n")
        );
    }
}

/// The mini UART the Pi's serial driver PD owns (`axolotl_mini_uart::rpi4b`, the SDFs'
/// `phys_addr="0xfe215000"` and `irq="125"`): `(aux page, mini UART registers, INTID)`.
struct MiniUart {
    aux: u64,
    regs: u64,
    intid: u32,
}

const MINI_UART: MiniUart = MiniUart {
    aux: axolotl_mini_uart::rpi4b::AUX_BASE as u64,
    regs: axolotl_mini_uart::rpi4b::MINI_UART_BASE as u64,
    intid: axolotl_mini_uart::rpi4b::MINI_UART_INTID,
};

fn mini_uart_mismatches(fdt: &Fdt, b: &Board, m: &MiniUart) -> Vec<String> {
    let mut bad = Vec::new();
    macro_rules! same {
        ($($a:expr),+ $(,)?) => { same_in(&mut bad, $($a),+) };
    }
    // The aux block (its enable and interrupt words) and, inside its page, the mini UART.
    let aux = path_of_compatible(fdt, "brcm,bcm2835-aux");
    let uart = path_of_compatible(fdt, "brcm,bcm2835-aux-uart");
    same!("aux base", m.aux, regs(fdt, &aux)[0].0);
    let (at, size) = regs(fdt, &uart)[0];
    same!("mini UART base", m.regs, at);
    same!(
        "mini UART block size",
        axolotl_mini_uart::reg::MU_SIZE as u64,
        size
    );
    same!(
        "mini UART offset in the aux page",
        axolotl_mini_uart::reg::MU as u64,
        at.wrapping_sub(m.aux)
    );
    same!(
        "mini UART INTID",
        m.intid as u64,
        intids(fdt, &uart)[0] as u64
    );
    // A driver PD can be given it: a device untyped covers it.
    let (lo, hi) = b.device_window;
    if !(lo <= m.aux && m.aux + 0x1000 <= hi) {
        bad.push(format!(
            "the aux page {:#x} is outside the device window {lo:#x}..{hi:#x}",
            m.aux
        ));
    }
    bad
}

#[test]
fn rpi4b_mini_uart_matches_bcm2711_rpi_4_b_dtb() {
    let Some(dtb) = upstream_dtb("broadcom/bcm2711-rpi-4-b.dtb") else {
        return;
    };
    let fdt = Fdt::new(&dtb).expect("a valid DTB");
    let bad = mini_uart_mismatches(&fdt, &RPI4B, &MINI_UART);
    assert!(
        bad.is_empty(),
        "the mini UART disagrees with the DTB:\n{}",
        bad.join("\n")
    );
    // Each check can fail.
    for (what, m) in [
        (
            "aux",
            MiniUart {
                aux: 0xfe21_6000,
                ..MINI_UART
            },
        ),
        (
            "regs",
            MiniUart {
                regs: 0xfe21_5080,
                ..MINI_UART
            },
        ),
        (
            "intid",
            MiniUart {
                intid: 93,
                ..MINI_UART
            },
        ),
    ] {
        assert!(
            !mini_uart_mismatches(&fdt, &RPI4B, &m).is_empty(),
            "a wrong mini UART {what} passed"
        );
    }
}

/// Each check can fail: a board with one wrong constant is caught, for every constant.
#[test]
fn a_wrong_rpi4b_constant_is_caught() {
    let Some(dtb) = upstream_dtb("broadcom/bcm2711-rpi-4-b.dtb") else {
        return;
    };
    let fdt = Fdt::new(&dtb).expect("a valid DTB");
    let gic = |f: &dyn Fn(&mut [u64; 4])| {
        let GicLayout::V2 {
            gicd,
            gicc,
            gich,
            gicv,
        } = RPI4B.gic
        else {
            unreachable!()
        };
        let mut a = [gicd, gicc, gich, gicv];
        f(&mut a);
        GicLayout::V2 {
            gicd: a[0],
            gicc: a[1],
            gich: a[2],
            gicv: a[3],
        }
    };
    let wrong: Vec<(&str, Board)> = vec![
        (
            "uart_base",
            Board {
                uart_base: 0xfe21_5040,
                ..RPI4B
            },
        ),
        (
            "uart_irq",
            Board {
                uart_irq: 121,
                ..RPI4B
            },
        ),
        (
            "gicc",
            Board {
                gic: gic(&|a| a[1] = 0x4004_2000),
                ..RPI4B
            },
        ),
        (
            "gich",
            Board {
                gic: gic(&|a| a[2] += 0x1000),
                ..RPI4B
            },
        ),
        (
            "gicv",
            Board {
                gic: gic(&|a| a[3] = a[2]),
                ..RPI4B
            },
        ),
        (
            "timer_hz",
            Board {
                timer_hz: 62_500_000,
                ..RPI4B
            },
        ),
        (
            "hyp_timer_irq",
            Board {
                hyp_timer_irq: 27,
                ..RPI4B
            },
        ),
        (
            "phys_timer_irq",
            Board {
                phys_timer_irq: 29,
                ..RPI4B
            },
        ),
        (
            "virt_timer_irq",
            Board {
                virt_timer_irq: 26,
                ..RPI4B
            },
        ),
        (
            "vgic_maintenance_irq",
            Board {
                vgic_maintenance_irq: 24,
                ..RPI4B
            },
        ),
        (
            "device_window",
            Board {
                device_window: (0xfe00_0000, 0xff80_0000),
                ..RPI4B
            },
        ),
        (
            "the first RAM range beyond the first GiB",
            Board {
                ram: &[(0, 0x8000_0000)],
                ..RPI4B
            },
        ),
        (
            "RAM not from 0",
            Board {
                ram: &[(0x20_0000, 0x3b40_0000)],
                ..RPI4B
            },
        ),
        (
            "RAM into the peripherals",
            Board {
                ram: &[(0, 0x3b40_0000), (0x4000_0000, 0xfe00_0000)],
                ..RPI4B_4GB
            },
        ),
        (
            "RAM short of the peripherals",
            Board {
                ram: &[(0, 0x3b40_0000), (0x4000_0000, 0xfa00_0000)],
                ..RPI4B_4GB
            },
        ),
        (
            "RAM over the PCIe window",
            Board {
                ram: &[
                    (0, 0x3b40_0000),
                    (0x4000_0000, 0xfc00_0000),
                    (0x1_0000_0000, 0x6_2000_0000),
                ],
                ..RPI4B_8GB
            },
        ),
        (
            "RAM ranges overlapping",
            Board {
                ram: &[(0, 0x3b40_0000), (0x3a00_0000, 0x8000_0000)],
                ..RPI4B_2GB
            },
        ),
        (
            "RAM in half blocks",
            Board {
                ram: &[(0, 0x3b40_0000), (0x4000_0000, 0x8010_0000)],
                ..RPI4B_2GB
            },
        ),
        (
            "RAM beyond 40 bits",
            Board {
                ram: &[(0, 0x3b40_0000), (0x100_0000_0000, 0x100_0020_0000)],
                ..RPI4B_2GB
            },
        ),
        (
            "gpio_base",
            Board {
                console_setup: ConsoleSetup::Bcm2711Gpio14 {
                    gpio_base: 0x7e20_0000,
                    uart_clock_hz: 48_000_000,
                },
                ..RPI4B
            },
        ),
        (
            "kernel_load",
            Board {
                kernel_load: 0,
                ..RPI4B
            },
        ),
    ];
    for (what, b) in wrong {
        assert!(
            !rpi4b_mismatches(&fdt, &b).is_empty(),
            "a wrong {what} went unnoticed"
        );
    }
}

/// Paths of the direct children of the node at `under`.
fn children(fdt: &Fdt, under: &str) -> Vec<String> {
    let node = fdt
        .find_node(under)
        .unwrap_or_else(|| panic!("no node {under}"));
    node.children()
        .map(|c| format!("{}/{}", under.trim_end_matches('/'), c.name))
        .collect()
}

/// What in `b` disagrees with the Amlogic (GXBB or SM1) device tree `fdt`, one line each.
fn meson_mismatches(fdt: &Fdt, b: &Board) -> Vec<String> {
    let mut bad = Vec::new();
    macro_rules! same {
        ($($a:expr),+ $(,)?) => { same_in(&mut bad, $($a),+) };
    }

    // The console: serial0, the always-on domain's UART, Amlogic's own UART (no PL011).
    let uart = alias(fdt, "serial0");
    let compatible = fdt.find_node(&uart).unwrap().compatible().unwrap();
    if !compatible.all().any(|c| c == "amlogic,meson-gx-uart") {
        bad.push(format!("{uart} is no amlogic,meson-gx-uart"));
    }
    if b.console != ConsoleKind::MesonGx {
        bad.push(format!(
            "{uart} is a meson UART, the board says {:?}",
            b.console
        ));
    }
    same!("UART_AO base", b.uart_base, regs(fdt, &uart)[0].0);
    same!(
        "UART_AO INTID",
        b.uart_irq as u64,
        intids(fdt, &uart)[0] as u64
    );
    if b.console_setup != ConsoleSetup::AsLeft {
        bad.push("U-Boot leaves the console set up".into());
    }

    if gic_and_timer_mismatches(fdt, b, &mut bad).is_none() {
        return bad;
    }
    // The counter counts the 24 MHz crystal, the DT's fixed clock `xtal` (the timer node
    // names no frequency: the secure firmware programs CNTFRQ).
    let xtal = fdt
        .all_nodes()
        .find(|n| {
            n.compatible()
                .is_some_and(|c| c.all().any(|s| s == "fixed-clock"))
                && n.property("clock-output-names").and_then(|n| n.as_str()) == Some("xtal")
        })
        .expect("the fixed clock `xtal`");
    let hz = cells(xtal.property("clock-frequency").unwrap().value)[0];
    same!("timer frequency", b.timer_hz, hz);

    // Devices: the window is exactly the SoC's devices, from the lowest to the highest; the
    // GIC lies among them, and user level gets none of its frames but GICV (the kernel
    // carves them out: `Board::user_device_ranges`), nor the console's page.
    let mut lo = u64::MAX;
    let mut hi = 0;
    for dev in children(fdt, "/soc") {
        for (addr, size) in regs(fdt, &dev) {
            lo = lo.min(addr);
            hi = hi.max(addr + size);
        }
    }
    same!("device window start", b.device_window.0, lo);
    same!("device window end", b.device_window.1, hi);
    let user = b.user_device_ranges();
    let gic = path_of_compatible(fdt, "arm,gic-400");
    for (i, (addr, size)) in regs(fdt, &gic).into_iter().enumerate() {
        let gicv = i == 3;
        if gicv && !user.contains(addr, addr + size) {
            bad.push(format!(
                "GICV {addr:#x}+{size:#x} is not handed to user level"
            ));
        }
        if !gicv && user.meets(addr, addr + size) {
            bad.push(format!(
                "GIC frame {i} at {addr:#x}+{size:#x} is handed to user level: {:x?}",
                user.as_slice()
            ));
        }
    }
    let (console, _) = regs(fdt, &uart)[0];
    if user.meets(console & !0xfff, (console & !0xfff) + 0x1000) {
        bad.push(format!(
            "the console's page {console:#x} is handed to user level"
        ));
    }

    // RAM: inside the memory node (U-Boot fills the real size in; the DT's is every such
    // board's), from the first 2 MiB past every reserved range (the boot ROM's, the secure
    // monitor's: `no-map`) to the node's end.
    let mem = regs(fdt, "/memory@0");
    let (mem_base, mem_size) = mem[0];
    let reserved: Vec<(u64, u64)> = children(fdt, "/reserved-memory")
        .iter()
        .flat_map(|p| regs(fdt, p))
        .collect();
    assert!(!reserved.is_empty(), "the secure monitor's reserved ranges");
    let above_reserved = reserved
        .iter()
        .map(|&(a, s)| (a + s).next_multiple_of(2 << 20))
        .max()
        .unwrap();
    // One range: the DT's memory node is one.
    let &[(ram_base, ram_end)] = b.ram else {
        bad.push(format!(
            "RAM {:x?} is not the memory node's one range",
            b.ram
        ));
        return bad;
    };
    same!("RAM base", ram_base, above_reserved.max(mem_base));
    same!("RAM end", ram_end, mem_base + mem_size);
    let ram = ram_base..ram_end;
    if !ram.contains(&b.kernel_load) {
        bad.push(format!(
            "the kernel's load address {:#x} is outside RAM",
            b.kernel_load
        ));
    }
    for &(a, s) in &reserved {
        if a < ram.end && ram.start < a + s {
            bad.push(format!("RAM {ram:x?} overlaps the reserved {a:#x}+{s:#x}"));
        }
    }
    // The secondary cores are off until PSCI starts them (which the kernel never asks for):
    // nothing to park, no spin table to keep clear of.
    let cpus: Vec<String> = children(fdt, "/cpus")
        .into_iter()
        .filter(|p| p.starts_with("/cpus/cpu@"))
        .collect();
    assert_eq!(cpus.len(), 4, "{cpus:?}");
    for cpu in &cpus {
        let method = fdt
            .find_node(cpu)
            .unwrap()
            .property("enable-method")
            .and_then(|p| p.as_str());
        assert_eq!(method, Some("psci"), "{cpu}");
    }
    bad
}

const ODROIDS: [(&str, Board); 2] = [
    ("amlogic/meson-sm1-odroid-c4.dtb", ODROID_C4),
    ("amlogic/meson-gxbb-odroidc2.dtb", ODROID_C2),
];

#[test]
fn odroids_match_their_meson_dtbs() {
    for (dtb, board) in ODROIDS {
        let Some(bytes) = upstream_dtb(dtb) else {
            return;
        };
        let fdt = Fdt::new(&bytes).expect("a valid DTB");
        let bad = meson_mismatches(&fdt, &board);
        assert!(
            bad.is_empty(),
            "{} disagrees with {dtb}:\n{}",
            board.name,
            bad.join("\n")
        );
    }
}

/// Each check can fail: an ODROID board with one wrong constant is caught, for every one,
/// and each board's facts are not the other's.
#[test]
fn a_wrong_odroid_constant_is_caught() {
    for (dtb, b) in ODROIDS {
        let Some(bytes) = upstream_dtb(dtb) else {
            return;
        };
        let fdt = Fdt::new(&bytes).expect("a valid DTB");
        let GicLayout::V2 {
            gicd,
            gicc,
            gich,
            gicv,
        } = b.gic
        else {
            unreachable!()
        };
        let wrong: Vec<(&str, Board)> = vec![
            (
                "uart_base",
                Board {
                    uart_base: b.uart_base + 0x1000,
                    ..b
                },
            ),
            (
                "console",
                Board {
                    console: ConsoleKind::Pl011,
                    ..b
                },
            ),
            ("uart_irq", Board { uart_irq: 193, ..b }),
            (
                "gicd",
                Board {
                    gic: GicLayout::V2 {
                        gicd: gicd + 0x1000,
                        gicc,
                        gich,
                        gicv,
                    },
                    ..b
                },
            ),
            (
                "gicc",
                Board {
                    gic: GicLayout::V2 {
                        gicd,
                        gicc: gich,
                        gich,
                        gicv,
                    },
                    ..b
                },
            ),
            (
                "gich",
                Board {
                    gic: GicLayout::V2 {
                        gicd,
                        gicc,
                        gich: gich + 0x1000,
                        gicv,
                    },
                    ..b
                },
            ),
            (
                "gicv",
                Board {
                    gic: GicLayout::V2 {
                        gicd,
                        gicc,
                        gich,
                        gicv: gicv - 0x1000,
                    },
                    ..b
                },
            ),
            (
                "timer_hz",
                Board {
                    timer_hz: 25_000_000,
                    ..b
                },
            ),
            (
                "hyp_timer_irq",
                Board {
                    hyp_timer_irq: 30,
                    ..b
                },
            ),
            (
                "phys_timer_irq",
                Board {
                    phys_timer_irq: 29,
                    ..b
                },
            ),
            (
                "virt_timer_irq",
                Board {
                    virt_timer_irq: 26,
                    ..b
                },
            ),
            (
                "vgic_maintenance_irq",
                Board {
                    vgic_maintenance_irq: 9,
                    ..b
                },
            ),
            (
                "device_window start",
                Board {
                    device_window: (b.device_window.0 + 0x10_0000, b.device_window.1),
                    ..b
                },
            ),
            (
                "device_window end",
                Board {
                    device_window: (b.device_window.0, 0xffff_f000),
                    ..b
                },
            ),
            (
                "ram start",
                Board {
                    ram: Box::leak(Box::new([(0, b.ram[0].1)])),
                    ..b
                },
            ),
            (
                "ram end",
                Board {
                    ram: Box::leak(Box::new([(b.ram[0].0, b.ram[0].1 + (1 << 30))])),
                    ..b
                },
            ),
            (
                "ram in two ranges",
                Board {
                    ram: Box::leak(Box::new([b.ram[0], (0x1_0000_0000, 0x1_4000_0000)])),
                    ..b
                },
            ),
            (
                "kernel_load",
                Board {
                    kernel_load: 0x0500_0000,
                    ..b
                },
            ),
            (
                "console_setup",
                Board {
                    console_setup: ConsoleSetup::Bcm2711Gpio14 {
                        gpio_base: 0,
                        uart_clock_hz: 0,
                    },
                    ..b
                },
            ),
        ];
        for (what, w) in wrong {
            assert!(
                !meson_mismatches(&fdt, &w).is_empty(),
                "{}: a wrong {what} went unnoticed",
                b.name
            );
        }
    }
    // Neither board's constants fit the other's tree.
    for ((dtb, _), (_, other)) in ODROIDS.iter().zip(ODROIDS.iter().rev()) {
        let bytes = upstream_dtb(dtb).unwrap();
        let fdt = Fdt::new(&bytes).unwrap();
        assert!(
            !meson_mismatches(&fdt, other).is_empty(),
            "{} fits {dtb}",
            other.name
        );
    }
}

/// The GIC interrupt flags of a node's `interrupts` (the third cell: 1 edge rising, 4 level
/// high).
fn irq_flags(fdt: &Fdt, path: &str) -> Vec<u64> {
    let p = fdt
        .find_node(path)
        .and_then(|n| n.property("interrupts"))
        .unwrap_or_else(|| panic!("{path} has no interrupts"));
    cells(p.value).chunks_exact(3).map(|i| i[2]).collect()
}

/// The node of the clock named `name` in a node's `clocks` (walking the list by each
/// provider's `#clock-cells`).
fn named_clock<'b, 'a>(fdt: &'b Fdt<'a>, path: &str, name: &str) -> fdt::node::FdtNode<'b, 'a> {
    let node = fdt.find_node(path).unwrap();
    let names: Vec<&str> = node
        .property("clock-names")
        .map(|p| p.value.split(|&b| b == 0).filter(|s| !s.is_empty()))
        .into_iter()
        .flatten()
        .map(|s| std::str::from_utf8(s).unwrap())
        .collect();
    let at = names
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("{path} has no clock {name}: {names:?}"));
    let list = cells(node.property("clocks").unwrap().value);
    let mut c = &list[..];
    for i in 0.. {
        let provider = fdt
            .find_phandle(c[0] as u32)
            .unwrap_or_else(|| panic!("{path}: no clock provider {:#x}", c[0]));
        if i == at {
            return provider;
        }
        let n = provider
            .property("#clock-cells")
            .map_or(0, |p| cells(p.value)[0] as usize);
        c = &c[1 + n..];
    }
    unreachable!()
}

/// The ODROIDs' UART_A, the serial driver PD's (`axolotl_meson_uart::odroid_c4::UART_A`,
/// `odroid_c2::UART_A`; the SDFs' `phys_addr` and `irq`).
fn uart_a_mismatches(fdt: &Fdt, b: &Board, u: &axolotl_meson_uart::BoardUart) -> Vec<String> {
    let mut bad = Vec::new();
    macro_rules! same {
        ($($a:expr),+ $(,)?) => { same_in(&mut bad, $($a),+) };
    }
    // The DTs have no labels: UART_A is the one meson UART outside the always-on domain with
    // the 128-byte FIFOs (`fifo-size`; the others have the default 64).
    let found: Vec<String> = walk(fdt, "/")
        .into_iter()
        .filter(|(_, n)| {
            n.compatible().is_some_and(|c| {
                c.all().any(|s| s == "amlogic,meson-gx-uart")
                    && !c.all().any(|s| s == "amlogic,meson-ao-uart")
            }) && n
                .property("fifo-size")
                .is_some_and(|p| cells(p.value) == [128])
        })
        .map(|(p, _)| p)
        .collect();
    assert_eq!(found.len(), 1, "one UART_A: {found:?}");
    let uart = &found[0];
    if *uart == alias(fdt, "serial0") {
        bad.push(format!("{uart} is the console"));
    }
    if u.board != b.name {
        bad.push(format!("UART_A of {}, not of {}", u.board, b.name));
    }
    let (at, size) = regs(fdt, uart)[0];
    same!("UART_A base", u.base, at);
    same!(
        "UART_A block size",
        axolotl_meson_uart::reg::SIZE as u64,
        size
    );
    same!("UART_A INTID", u.intid as u64, intids(fdt, uart)[0] as u64);
    let edge = irq_flags(fdt, uart)[0] == 1;
    if edge != u.edge {
        bad.push(format!(
            "UART_A's interrupt is {}-triggered, the constant says otherwise",
            if edge { "edge" } else { "level" }
        ));
    }
    same!("UART_A FIFO", u.fifo as u64, 128);
    // Its baud clock is the crystal the driver divides.
    let baud = named_clock(fdt, uart, "baud");
    let is_fixed = baud
        .compatible()
        .is_some_and(|c| c.all().any(|s| s == "fixed-clock"));
    if !is_fixed {
        bad.push(format!(
            "UART_A's baud clock {} is not a fixed clock",
            baud.name
        ));
    } else {
        same!(
            "UART_A baud clock",
            u.xtal_hz as u64,
            cells(baud.property("clock-frequency").unwrap().value)[0]
        );
    }
    // A driver PD can be given it: a device untyped covers its page, which is not the
    // kernel's console page.
    let page = u.page();
    if !b.user_device_ranges().contains(page, page + 0x1000) {
        bad.push(format!(
            "UART_A's page {page:#x} is not handed to user level: {:x?}",
            b.user_device_ranges().as_slice()
        ));
    }
    bad
}

const ODROID_UART_A: [(&str, Board, axolotl_meson_uart::BoardUart); 2] = [
    (
        "amlogic/meson-sm1-odroid-c4.dtb",
        ODROID_C4,
        axolotl_meson_uart::odroid_c4::UART_A,
    ),
    (
        "amlogic/meson-gxbb-odroidc2.dtb",
        ODROID_C2,
        axolotl_meson_uart::odroid_c2::UART_A,
    ),
];

#[test]
fn odroid_uart_a_matches_the_meson_dtbs() {
    for (dtb, board, uart) in ODROID_UART_A {
        let Some(bytes) = upstream_dtb(dtb) else {
            return;
        };
        let fdt = Fdt::new(&bytes).expect("a valid DTB");
        let bad = uart_a_mismatches(&fdt, &board, &uart);
        assert!(
            bad.is_empty(),
            "{}'s UART_A disagrees with {dtb}:\n{}",
            board.name,
            bad.join("\n")
        );
        // Each check can fail.
        let wrong = [
            (
                "base",
                axolotl_meson_uart::BoardUart {
                    base: uart.base + 0x1000,
                    ..uart
                },
            ),
            (
                "base (the page for the registers)",
                axolotl_meson_uart::BoardUart {
                    base: uart.page() + if uart.offset() == 0 { 0x4c0 } else { 0 },
                    ..uart
                },
            ),
            ("intid", axolotl_meson_uart::BoardUart { intid: 26, ..uart }),
            (
                "edge",
                axolotl_meson_uart::BoardUart {
                    edge: false,
                    ..uart
                },
            ),
            ("fifo", axolotl_meson_uart::BoardUart { fifo: 64, ..uart }),
            (
                "xtal_hz",
                axolotl_meson_uart::BoardUart {
                    xtal_hz: 25_000_000,
                    ..uart
                },
            ),
        ];
        for (what, u) in wrong {
            assert!(
                !uart_a_mismatches(&fdt, &board, &u).is_empty(),
                "{}: a wrong UART_A {what} passed",
                board.name
            );
        }
        // The other board's UART_A does not fit, nor does this one on a board that keeps
        // its device window to the console's side of the GIC (as before UART_A had a
        // driver: C4 0xfc00_0000..0xffa0_0000, C2 0xc800_0000..0xd020_0000).
        for other in ODROID_UART_A.iter().map(|o| o.2).filter(|o| *o != uart) {
            assert!(!uart_a_mismatches(&fdt, &board, &other).is_empty());
        }
        let console_side = if board.name == "odroid-c4" {
            (0xfc00_0000, 0xffa0_0000)
        } else {
            (0xc800_0000, 0xd020_0000)
        };
        let narrow = Board {
            device_window: console_side,
            ..board
        };
        let bad = uart_a_mismatches(&fdt, &narrow, &uart);
        assert!(
            bad.iter().any(|l| l.contains("not handed to user level")),
            "{}: {bad:?}",
            board.name
        );
    }
}

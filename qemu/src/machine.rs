use std::path::Path;
use std::process::Command;

use axolotl_kernel_config::{Board, GicVersion};

pub const QEMU_AARCH64: &str = "qemu-system-aarch64";
/// Oldest QEMU the project supports (for `-M raspi4b`, current `virt` and GIC models).
pub const MIN_QEMU_MAJOR: u32 = 9;

/// How QEMU is started for a board.
#[derive(Clone, Debug)]
pub struct Machine {
    pub board: Board,
    pub cpu: &'static str,
    /// Deterministic instruction-counted time (`-icount shift=N`), for benchmarks.
    pub icount_shift: Option<u32>,
    /// UART1's chardev backend, as after `-chardev` without the id (e.g. `pipe,path=/tmp/u`
    /// for `/tmp/u.in` and `/tmp/u.out`); `None`: `null`. More exactly, the backend of the
    /// UART the kernel's console is *not* on: UART1, or UART0 when the system takes UART0 and
    /// the kernel's console is on UART1 ([`Machine::console_on_uart1`]). On `raspi4b` the
    /// second `-serial` is the Pi's mini UART (the aux block's, 0xfe21_5040, INTID 125),
    /// which the Pi's systems use where virt's use UART1.
    pub uart1: Option<String>,
    /// A virtio-mmio NIC on QEMU user networking (`-netdev user`): the guest reaches the
    /// host's loopback through the forwards, and nothing else listens outside 127.0.0.1.
    pub net: Option<Net>,
    /// A virtio-mmio disk backed by this raw image file.
    pub disk: Option<std::path::PathBuf>,
    /// A virtio-console on virtio-mmio transport 29 (`0x0a00_3a00`, INTID 77): its port 0's
    /// chardev backend, as [`Machine::uart1`]'s (docs/control.md: the control plane's
    /// transport where UART1 is a guest's console).
    pub console: Option<String>,
    /// On a board whose boot chain loads a flat binary (rpi4b), hand QEMU the ELF instead:
    /// QEMU then starts every core at its entry at EL3, as no firmware would, which is how
    /// the kernel's EL3 entry and its parking of secondary cores are tested.
    pub boot_elf: bool,
    /// Interactive only: the kernel console (UART0, the system log) goes to this file, not
    /// the terminal, which is then UART1's alone (a guest's serial line: docs/vmm.md).
    pub log_file: Option<std::path::PathBuf>,
}

/// QEMU user networking for the board's virtio-mmio NIC.
#[derive(Clone, Debug, Default)]
pub struct Net {
    /// `(host port on 127.0.0.1, guest TCP port)` pairs (`hostfwd=tcp:127.0.0.1:H-:G`).
    pub tcp_forwards: Vec<(u16, u16)>,
    /// The same for UDP.
    pub udp_forwards: Vec<(u16, u16)>,
    /// UDP forwards to a guest address other than slirp's default 10.0.2.15: `(host port,
    /// guest IPv4, guest port)`, for a second client on the network.
    pub udp_forwards_to: Vec<(u16, [u8; 4], u16)>,
}

/// QEMU `raspi4b`'s RAM (its `info mtree`: `ram` at 0..0x8000_0000; the machine has 2 GiB
/// and takes no `-m`).
pub const RASPI4B_RAM: (u64, u64) = (0, 0x8000_0000);

/// Whether QEMU has a machine for `board`; the ODROIDs' Amlogic SoCs have none (they are
/// built and put on SD cards, never booted here: docs/boards.md), and QEMU's Pi 4 is the
/// 2 GiB one: the 4 and 8 GiB boards' RAM is not all there.
pub fn emulated(board: &Board) -> Result<(), String> {
    match board.family {
        "qemu-virt-aarch64" => Ok(()),
        "rpi4b" => match board
            .ram
            .iter()
            .find(|r| r.0 < RASPI4B_RAM.0 || r.1 > RASPI4B_RAM.1)
        {
            None => Ok(()),
            Some(r) => Err(format!(
                "QEMU's raspi4b has 2 GiB of RAM ({:#x}..{:#x}), not {}'s {:#x}..{:#x}: boot \
                 rpi4b_2gb there (or rpi4b, the 1 GiB board), or put {} on a Pi's SD card \
                 (`cargo xtask image`, docs/boards.md)",
                RASPI4B_RAM.0, RASPI4B_RAM.1, board.name, r.0, r.1, board.name
            )),
        },
        _ => Err(format!(
            "QEMU has no machine for {name}: build it (`cargo xtask build --board {name}`) or \
             make its SD card (`cargo xtask image`, docs/boards.md)",
            name = board.name
        )),
    }
}

impl Machine {
    pub fn new(board: Board) -> Self {
        Machine {
            board,
            cpu: "cortex-a72",
            icount_shift: None,
            uart1: None,
            net: None,
            disk: None,
            console: None,
            boot_elf: false,
            log_file: None,
        }
    }

    /// Puts UART1 on a unix socket at `path` that QEMU listens on (`server=on,wait=off`: the
    /// system boots without a client, and a client may come and go): the host end of a
    /// system's control PD (docs/control.md, `cargo xtask ctl --socket PATH`).
    pub fn control_socket(&mut self, path: &std::path::Path) {
        self.uart1 = Some(format!("socket,path={},server=on,wait=off", path.display()));
    }

    /// As [`Machine::control_socket`], on the virtio-console ([`Machine::console`]) instead of
    /// UART1: for a system whose control PD is served by `virtio-console-driver.elf`.
    pub fn control_console(&mut self, path: &std::path::Path) {
        self.console = Some(format!("socket,path={},server=on,wait=off", path.display()));
    }

    /// Whether the kernel's console is on QEMU virt's second PL011: the system gives the
    /// first (UART0) to user level (`axolotl_sdf::console`).
    pub fn console_on_uart1(&self) -> bool {
        self.board
            .console_candidates()
            .get(1)
            .is_some_and(|u| u.base == self.board.uart_base)
    }

    pub fn gic(&self) -> GicVersion {
        self.board.gic.version()
    }

    /// QEMU arguments that boot `kernel` with the serial console on stdio. With
    /// `interactive`, typed keys reach UART1 (Ctrl-A C switches them to QEMU's monitor and
    /// back, Ctrl-A X quits).
    ///
    /// The first `-serial` is the kernel console (`virt`'s UART0, `0x0900_0000`; the Pi's
    /// PL011 UART0, `0xfe20_1000`). The second is `virt`'s UART1 (`0x0904_0000`, INTID 40),
    /// which the resilient-echo system's driver PD owns, or on `raspi4b` the mini UART
    /// (QEMU's `bcm2835-aux`: the aux page `0xfe21_5000`, INTID 125; the Pi's systems'
    /// driver PD owns it); `null` unless [`Machine::uart1`] names a backend.
    pub fn args(&self, kernel: &Path, interactive: bool) -> Vec<String> {
        let mut a: Vec<String> = match self.board.family {
            "qemu-virt-aarch64" => vec![
                "-M".into(),
                format!("virt,virtualization=on,gic-version={}", self.gic().number()),
                "-cpu".into(),
                self.cpu.into(),
                "-m".into(),
                // One range, from where QEMU puts RAM (0x4000_0000).
                format!("{}M", self.board.ram_bytes() >> 20),
                "-smp".into(),
                "1".into(),
                "-kernel".into(),
                kernel.display().to_string(),
            ],
            // The machine fixes its CPUs (4 Cortex-A72), RAM (2 GiB) and devices. `-kernel`
            // with a flat binary is what the firmware does: loaded at 0x80000, entered at EL2
            // on the boot core, the others on the spin table. No virtio-mmio: no NIC or disk.
            "rpi4b" => {
                assert!(
                    self.net.is_none() && self.disk.is_none() && self.console.is_none(),
                    "QEMU raspi4b has no virtio-mmio transports"
                );
                let k = if self.boot_elf {
                    kernel.to_path_buf()
                } else {
                    kernel.with_extension("img")
                };
                vec![
                    "-M".into(),
                    "raspi4b".into(),
                    "-kernel".into(),
                    k.display().to_string(),
                ]
            }
            other => panic!("no QEMU machine for board {other}"),
        };
        a.push("-no-reboot".into());
        let mut uart1 = match &self.uart1 {
            Some(backend) => {
                a.extend(["-chardev".into(), format!("{backend},id=uart1")]);
                "chardev:uart1"
            }
            None => "null",
        };
        if interactive {
            // The terminal's keys go to UART1 (input for the system's serial driver, e.g. the
            // Linux guest's console) and, after Ctrl-A C, to QEMU's monitor: a mux of the two
            // on stdio (signal=off: Ctrl-C goes to the UART, as with `mon:stdio`). UART0, the
            // kernel console, writes to the same terminal through its own output-only chardev:
            // on the mux it would take the keys first (QEMU focuses a mux's last attached
            // frontend; which one that is depends on device creation order, and with UART0 on
            // the mux the keys went to UART0, where nothing reads them).
            // With a log file, UART0 writes there (afresh each run) and the terminal is
            // UART1's byte for byte: no system log line lands in a guest's prompt.
            let console = match &self.log_file {
                Some(f) => format!("file,id=console,path={}", f.display()),
                None => "file,id=console,path=/dev/stdout,append=on".into(),
            };
            if self.uart1.is_none() {
                uart1 = "chardev:term";
            }
            a.extend(
                [
                    "-nographic",
                    "-chardev",
                    "stdio,id=term,mux=on,signal=off",
                    "-mon",
                    "chardev=term,mode=readline",
                    "-chardev",
                    &console,
                ]
                .map(String::from),
            );
        } else {
            a.extend(["-display", "none"].map(String::from));
        }
        let console = if interactive {
            "chardev:console"
        } else {
            "stdio"
        };
        // QEMU gives its `-serial`s to UART0, UART1 in order: the kernel's console is on
        // stdout (or the log file) wherever the kernel writes it.
        let (first, second) = if self.console_on_uart1() {
            (uart1, console)
        } else {
            (console, uart1)
        };
        a.extend(["-serial", first, "-serial", second, "-monitor", "none"].map(String::from));
        if self.board.family == "rpi4b" {
            // The second -serial was the Pi's mini UART (QEMU wires serial_hd(1) to the aux
            // block). Its NIC (GENET) is not modelled: no virtio devices either.
        } else {
            a.extend(self.virtio_args());
        }
        if let Some(s) = self.icount_shift {
            a.extend(["-icount".into(), format!("shift={s}")]);
        }
        a
    }
}

impl Machine {
    /// The virtio-mmio devices. `virt` has 32 transports at `0x0a00_0000 + 0x200 n` (INTID
    /// 48 + n); QEMU plugs command-line devices from the highest transport down (seen with
    /// `info qtree`), so the order here fixes where each lands and the SDFs can name them:
    /// the disk on transport 31 (`0x0a00_3e00`, INTID 79), the NIC on 30 (`0x0a00_3c00`,
    /// INTID 78). Each names its bus too (`virtio-mmio-bus.N`), so it lands there whether or
    /// not the other is present (a NIC alone would otherwise take 31). A driver still checks
    /// the transport's DeviceID register before use.
    /// Public for QEMU command lines that boot a guest directly, with the same devices.
    pub fn virtio_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(disk) = &self.disk {
            a.extend([
                "-drive".into(),
                format!("if=none,id=d0,format=raw,file={}", disk.display()),
                "-device".into(),
                "virtio-blk-device,drive=d0,bus=virtio-mmio-bus.31".into(),
            ]);
        }
        if let Some(net) = &self.net {
            let mut netdev = String::from("user,id=n0");
            for (h, g) in &net.tcp_forwards {
                netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
            }
            for (h, g) in &net.udp_forwards {
                netdev.push_str(&format!(",hostfwd=udp:127.0.0.1:{h}-:{g}"));
            }
            for (h, [a, b, c, d], g) in &net.udp_forwards_to {
                netdev.push_str(&format!(",hostfwd=udp:127.0.0.1:{h}-{a}.{b}.{c}.{d}:{g}"));
            }
            a.extend([
                "-netdev".into(),
                netdev,
                "-device".into(),
                "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.30".into(),
            ]);
        } else {
            // Else QEMU adds its default NIC, a virtio-net-pci no system knows of, whose boot
            // ROM (efi-virtio.rom) comes from ipxe-qemu, a package setup does not install: QEMU
            // would refuse to start.
            a.extend(["-nic".into(), "none".into()]);
        }
        if let Some(backend) = &self.console {
            // Port 0 of a virtio-serial device is a console (`virtconsole`, nr 0), the only
            // port a driver without VIRTIO_CONSOLE_F_MULTIPORT sees.
            a.extend([
                "-chardev".into(),
                format!("{backend},id=vcons"),
                "-device".into(),
                "virtio-serial-device,bus=virtio-mmio-bus.29,id=vser".into(),
                "-device".into(),
                "virtconsole,chardev=vcons,bus=vser.0,nr=0".into(),
            ]);
        }
        // Modern (version 2) transports, as the virtio 1.x spec and our drivers expect.
        if self.disk.is_some() || self.net.is_some() || self.console.is_some() {
            a.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
        }
        a
    }
}

/// `(major, minor)` of the installed qemu-system-aarch64, if any.
pub fn qemu_version() -> Option<(u32, u32)> {
    let out = Command::new(QEMU_AARCH64).arg("--version").output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split("version ").nth(1)?.split_whitespace().next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axolotl_kernel_config::board_by_name;

    #[test]
    fn parses_qemu_versions() {
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"),
            Some((10, 0))
        );
        assert_eq!(parse_version("QEMU emulator version 7.2.15"), Some((7, 2)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn a_machine_without_a_nic_asks_for_none() {
        let b = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap();
        let a = Machine::new(b).args(Path::new("k.elf"), false).join(" ");
        assert!(a.contains("-nic none"), "{a}");
        assert!(!a.contains("force-legacy"), "{a}");
    }

    #[test]
    fn a_control_console_is_port_0_of_a_virtio_serial_device_on_transport_29() {
        let b = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap();
        let mut m = Machine::new(b);
        m.control_console(Path::new("/t/c.sock"));
        let a = m.args(Path::new("k.elf"), false).join(" ");
        assert!(
            a.contains("-chardev socket,path=/t/c.sock,server=on,wait=off,id=vcons")
                && a.contains("-device virtio-serial-device,bus=virtio-mmio-bus.29,id=vser")
                && a.contains("-device virtconsole,chardev=vcons,bus=vser.0,nr=0")
                && a.contains("virtio-mmio.force-legacy=false"),
            "{a}"
        );
        assert!(
            a.contains("-serial stdio -serial null"),
            "UART1 untouched: {a}"
        );
    }

    /// A system that takes UART0 gets a kernel whose console is UART1: QEMU's first
    /// `-serial` (UART0) is then the system's line, the second the kernel's log on stdout.
    #[test]
    fn a_console_on_uart1_swaps_the_serial_lines() {
        let b = board_by_name("qemu-virt-aarch64", Some(GicVersion::V2)).unwrap();
        let uart1 = b.console_candidates()[1];
        let mut m = Machine::new(b.with_console(uart1));
        assert!(m.console_on_uart1() && !Machine::new(b).console_on_uart1());
        let a = m.args(Path::new("k.elf"), false).join(" ");
        assert!(a.contains("-serial null -serial stdio"), "{a}");
        m.uart1 = Some("pipe,path=/tmp/u".into());
        let f = m.args(Path::new("k.elf"), false).join(" ");
        assert!(f.contains("-serial chardev:uart1 -serial stdio"), "{f}");
        let i = m.args(Path::new("k.elf"), true).join(" ");
        assert!(
            i.contains("-serial chardev:uart1 -serial chardev:console"),
            "{i}"
        );
        m.uart1 = None;
        let t = m.args(Path::new("k.elf"), true).join(" ");
        assert!(
            t.contains("-serial chardev:term -serial chardev:console"),
            "{t}"
        );
    }

    #[test]
    fn only_virt_and_the_pi_are_emulated() {
        for (name, ok) in [
            ("qemu-virt-aarch64", true),
            ("rpi4b", true),
            ("rpi4b_1gb", true),
            ("rpi4b_2gb", true),
            ("rpi4b_4gb", false),
            ("rpi4b_8gb", false),
            ("odroid-c4", false),
            ("odroid-c2", false),
        ] {
            let b = board_by_name(name, None).unwrap();
            assert_eq!(super::emulated(&b).is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn rpi4b_boots_the_flat_binary_on_the_machine_s_own_cpus() {
        let b = board_by_name("rpi4b", None).unwrap();
        let a = Machine::new(b).args(Path::new("d/k.elf"), false).join(" ");
        assert!(a.starts_with("-M raspi4b -kernel d/k.img "), "{a}");
        for absent in ["-m ", "-smp", "-cpu", "virtio"] {
            assert!(!a.contains(absent), "{a}");
        }
        assert!(a.contains("-serial stdio -serial null"), "{a}");
        // The 2 GiB board is the machine's own RAM: the same command line.
        let b2 = board_by_name("rpi4b_2gb", None).unwrap();
        assert_eq!(
            Machine::new(b2).args(Path::new("d/k.elf"), false).join(" "),
            a
        );
        let e = super::emulated(&board_by_name("rpi4b_4gb", None).unwrap()).unwrap_err();
        assert!(e.contains("2 GiB") && e.contains("rpi4b_2gb"), "{e}");
        let mut m = Machine::new(b);
        m.boot_elf = true;
        let e = m.args(Path::new("d/k.elf"), false).join(" ");
        assert!(e.contains("-kernel d/k.elf "), "{e}");
        // The mini UART (the second -serial) on a backend, as the Pi's resilient-echo test has.
        let mut m = Machine::new(b);
        m.uart1 = Some("socket,path=/tmp/s".into());
        let u = m.args(Path::new("d/k.elf"), false).join(" ");
        assert!(
            u.contains("-chardev socket,path=/tmp/s,id=uart1")
                && u.contains("-serial stdio -serial chardev:uart1"),
            "{u}"
        );
    }

    #[test]
    fn machine_args_name_the_gic_and_memory() {
        let b = board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap();
        let a = Machine::new(b).args(Path::new("k.elf"), false).join(" ");
        assert!(a.contains("virt,virtualization=on,gic-version=3"), "{a}");
        assert!(
            a.contains("-m 2048M") && a.contains("-kernel k.elf") && a.contains("-serial stdio"),
            "{a}"
        );
        // The console first (UART0), then UART1 for the serial driver PD.
        assert!(a.contains("-serial stdio -serial null"), "{a}");
        // Not a terminal (`cargo xtask run > log`, the test harness): nothing opens stdout as
        // a file, which truncated a redirected log and wrote over it (issue #19).
        assert!(!a.contains("/dev/stdout") && !a.contains("file,"), "{a}");
        let i = Machine::new(board_by_name("qemu-virt-aarch64", Some(GicVersion::V3)).unwrap())
            .args(Path::new("k.elf"), true)
            .join(" ");
        assert!(
            i.contains("-serial chardev:console -serial chardev:term")
                && i.contains("-chardev stdio,id=term,mux=on,signal=off")
                && i.contains("-chardev file,id=console,path=/dev/stdout,append=on"),
            "{i}"
        );
        let mut m = Machine::new(board_by_name("qemu-virt-aarch64", Some(GicVersion::V2)).unwrap());
        m.log_file = Some("/tmp/run/x.log".into());
        let l = m.args(Path::new("k.elf"), true).join(" ");
        assert!(
            l.contains("-chardev file,id=console,path=/tmp/run/x.log -serial chardev:console")
                && l.contains("-serial chardev:term"),
            "{l}"
        );
        m.log_file = None;
        m.uart1 = Some("pipe,path=/tmp/u".into());
        let f = m.args(Path::new("k.elf"), false).join(" ");
        assert!(
            f.contains("-chardev pipe,path=/tmp/u,id=uart1")
                && f.contains("-serial stdio -serial chardev:uart1"),
            "{f}"
        );
    }
}

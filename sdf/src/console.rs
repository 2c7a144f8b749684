//! Where the kernel's console goes. A system may give the board's console UART to user level
//! (libvmm's `simple` maps QEMU virt's PL011 into its guest, sDDF's `serial` drives it), as
//! Microkit systems do; the kernel must then leave it alone. The build puts the kernel's log
//! on the first of the board's [`Board::console_candidates`] the system leaves free.

use axolotl_kernel_config::{Board, ConsoleUart};

use crate::{Span, SystemDescription};

/// What in `sd` takes `uart` from the kernel: a map of a region at a fixed physical address
/// that covers its register page (by a PD or a virtual machine), or a claim of its interrupt.
/// Each with its position and what it is, in file order. A region that no one maps only
/// names the address (Microkit's `setvar` example) and takes nothing.
pub fn takers(sd: &SystemDescription, uart: &ConsoleUart) -> Vec<(Span, String)> {
    let page = (uart.page(), uart.page() + 0x1000);
    let covers = |mr: &str| {
        sd.memory_regions.iter().any(|r| {
            r.name == mr
                && r.phys_addr
                    .is_some_and(|pa| pa < page.1 && page.0 < pa.saturating_add(r.size.max(1)))
        })
    };
    let mut out = Vec::new();
    for pd in sd.all_pds() {
        for m in &pd.maps {
            if covers(&m.mr) {
                out.push((
                    m.span,
                    format!("protection domain `{}` maps `{}`", pd.name, m.mr),
                ));
            }
        }
        if let Some(vm) = &pd.virtual_machine {
            for m in &vm.maps {
                if covers(&m.mr) {
                    out.push((
                        m.span,
                        format!("virtual machine `{}` maps `{}`", vm.name, m.mr),
                    ));
                }
            }
        }
        for irq in &pd.irqs {
            if irq.irq == uart.irq {
                out.push((
                    irq.span,
                    format!("protection domain `{}` claims irq {}", pd.name, irq.irq),
                ));
            }
        }
    }
    out.sort_by_key(|(s, _)| *s);
    out
}

/// `board` with the kernel's console where `sd` leaves it: the board's own UART unless the
/// system takes it, else the first other candidate the system leaves free. When every
/// candidate is taken the board is returned unchanged, and the check refuses what takes its
/// UART (`irq-reserved`, `phys-device`, `console`).
pub fn console_board(sd: &SystemDescription, board: &Board) -> Board {
    let Some(own) = board.console_uart() else {
        return *board;
    };
    if takers(sd, &own).is_empty() {
        return *board;
    }
    board
        .console_candidates()
        .iter()
        .find(|u| **u != own && takers(sd, u).is_empty())
        .map_or(*board, |u| board.with_console(*u))
}

//! The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2): the register window
//! every virtio device here sits behind, the driver-status state machine (§2.1,
//! §3.1) and the queues' configuration registers.
//!
//! Bad input (docs/vmm.md, "Virtio devices"): control registers take only aligned
//! 32-bit accesses and the configuration space 8/16/32-bit aligned ones (§4.2.2.2);
//! anything else reads as zero and is ignored, as QEMU does, and is counted. A
//! driver that breaks the status protocol (clearing bits, FEATURES_OK with features
//! the device did not offer, DRIVER_OK before FEATURES_OK) has the offending write
//! refused, which the spec's driver sees by reading Status back. A broken queue sets
//! DEVICE_NEEDS_RESET and raises a configuration-change interrupt (§2.1.2); the
//! device then does nothing until the driver resets it.

use super::queue::{Queue, QueueError};
use super::{F_VERSION_1, isr, status};
use crate::bus::Access;

pub const MAGIC_VALUE: u64 = 0x000;
pub const VERSION: u64 = 0x004;
pub const DEVICE_ID: u64 = 0x008;
pub const VENDOR_ID: u64 = 0x00c;
pub const DEVICE_FEATURES: u64 = 0x010;
pub const DEVICE_FEATURES_SEL: u64 = 0x014;
pub const DRIVER_FEATURES: u64 = 0x020;
pub const DRIVER_FEATURES_SEL: u64 = 0x024;
pub const QUEUE_SEL: u64 = 0x030;
pub const QUEUE_NUM_MAX: u64 = 0x034;
pub const QUEUE_NUM: u64 = 0x038;
pub const QUEUE_READY: u64 = 0x044;
pub const QUEUE_NOTIFY: u64 = 0x050;
pub const INTERRUPT_STATUS: u64 = 0x060;
pub const INTERRUPT_ACK: u64 = 0x064;
pub const STATUS: u64 = 0x070;
pub const QUEUE_DESC_LOW: u64 = 0x080;
pub const QUEUE_DESC_HIGH: u64 = 0x084;
pub const QUEUE_DRIVER_LOW: u64 = 0x090;
pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
pub const SHM_SEL: u64 = 0x0ac;
pub const SHM_LEN_LOW: u64 = 0x0b0;
pub const SHM_LEN_HIGH: u64 = 0x0b4;
pub const SHM_BASE_LOW: u64 = 0x0b8;
pub const SHM_BASE_HIGH: u64 = 0x0bc;
pub const QUEUE_RESET: u64 = 0x0c0;
pub const CONFIG_GENERATION: u64 = 0x0fc;
pub const CONFIG: u64 = 0x100;

/// "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// "AXOL": our devices' VendorID (QEMU uses "QEMU"); drivers do not look at it.
pub const VENDOR: u32 = 0x4c4f_5841;

/// Everything the guest did wrong that was answered by ignoring it, for a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Wrong width or alignment, reads of write-only and writes of read-only registers.
    pub bad_accesses: u32,
    /// Refused writes: status bits cleared, FEATURES_OK with features not offered,
    /// DRIVER_OK before FEATURES_OK, queue registers changed while the queue is ready
    /// or before FEATURES_OK, driver features changed after FEATURES_OK.
    pub refused_writes: u32,
    /// QueueNotify before DRIVER_OK, after NEEDS_RESET, or for a queue that is not ready.
    pub ignored_notifications: u32,
    /// Queue violations that set DEVICE_NEEDS_RESET.
    pub queue_errors: u32,
}

pub(crate) fn bump(c: &mut u32) {
    *c = c.wrapping_add(1);
}

/// The transport's registers for a device with `Q` virtqueues.
#[derive(Debug, Clone)]
pub struct Transport<const Q: usize> {
    device_id: u32,
    device_features: u64,
    driver_features: u64,
    /// Non-zero driver feature bits above bit 63 (which no device offers).
    driver_features_high: bool,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
    shm_sel: u32,
    pub queues: [Queue; Q],
    status: u32,
    isr: u32,
    config_generation: u32,
    notified: u32,
    /// Bumped by every reset and every queue stop: work the device handed out before
    /// (a block request at the backend) must not reach the rings afterwards.
    epoch: u32,
    ram: (u64, u64),
    pub counters: Counters,
    /// The first queue violation since the last reset, for the VMM's log line.
    pub last_error: Option<QueueError>,
}

impl<const Q: usize> Transport<Q> {
    /// `queue_max`: QueueNumMax of every queue; `ram`: guest RAM `(base, size)`, where
    /// the rings must lie.
    pub fn new(device_id: u32, device_features: u64, queue_max: u16, ram: (u64, u64)) -> Self {
        Self {
            device_id,
            device_features: device_features | F_VERSION_1,
            driver_features: 0,
            driver_features_high: false,
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            shm_sel: 0,
            queues: [Queue::new(queue_max); Q],
            status: 0,
            isr: 0,
            config_generation: 0,
            notified: 0,
            epoch: 0,
            ram,
            counters: Counters::default(),
            last_error: None,
        }
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    pub fn interrupt_status(&self) -> u32 {
        self.isr
    }

    /// The features both sides agreed on (meaningful once FEATURES_OK is set).
    pub fn features(&self) -> u64 {
        self.driver_features & self.device_features
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Guest RAM `(base, size)` as given to [`Transport::new`].
    pub fn ram(&self) -> (u64, u64) {
        self.ram
    }

    /// Level of the device's interrupt line, for `Vgic::set_level`.
    pub fn irq_level(&self) -> bool {
        self.isr != 0
    }

    /// The driver is running the device and it is not broken: queues may be used.
    pub fn live(&self) -> bool {
        self.status & status::DRIVER_OK != 0
            && self.status & (status::DEVICE_NEEDS_RESET | status::FAILED) == 0
    }

    /// The queues the driver notified since the last call (bit `i` = queue `i`).
    pub fn take_notified(&mut self) -> u32 {
        core::mem::take(&mut self.notified)
    }

    /// A used-buffer notification.
    pub fn interrupt_used(&mut self) {
        self.isr |= isr::USED_BUFFER;
    }

    /// The configuration space changed: readers retry (ConfigGeneration) and a running
    /// driver is told.
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & status::DRIVER_OK != 0 {
            self.isr |= isr::CONFIG_CHANGE;
        }
    }

    /// The driver broke a queue: DEVICE_NEEDS_RESET, and, if it runs the device, a
    /// configuration-change interrupt (§2.1.2). Only the first error is kept.
    pub fn device_error(&mut self, e: QueueError) {
        bump(&mut self.counters.queue_errors);
        if self.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        self.last_error = Some(e);
        self.status |= status::DEVICE_NEEDS_RESET;
        if self.status & status::DRIVER_OK != 0 {
            self.isr |= isr::CONFIG_CHANGE;
        }
    }

    fn reset(&mut self) {
        self.driver_features = 0;
        self.driver_features_high = false;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.shm_sel = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.isr = 0;
        self.notified = 0;
        self.epoch = self.epoch.wrapping_add(1);
        self.last_error = None;
    }

    /// For the state region: everything but what the build fixes and the diagnostics.
    pub fn save(&self) -> super::TransportState<Q> {
        super::TransportState {
            driver_features: self.driver_features,
            driver_features_high: self.driver_features_high,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            queue_sel: self.queue_sel,
            shm_sel: self.shm_sel,
            status: self.status,
            isr: self.isr,
            config_generation: self.config_generation,
            notified: self.notified,
            epoch: self.epoch,
            queues: core::array::from_fn(|i| self.queues[i].save()),
        }
    }

    /// Takes on `st` (a restarted VMM) if this transport's interface could have produced
    /// it; on error nothing changed. The epoch moves on, so that no completion of work the
    /// dead VMM handed out reaches the rings, and every ready queue counts as notified, so
    /// that the VMM looks at each once.
    pub fn restore(
        &mut self,
        st: &super::TransportState<Q>,
    ) -> Result<(), super::VirtioStateError> {
        use super::VirtioStateError as E;
        use status::*;
        let mut t = self.clone();
        t.driver_features = st.driver_features;
        t.driver_features_high = st.driver_features_high;
        t.device_features_sel = st.device_features_sel;
        t.driver_features_sel = st.driver_features_sel;
        t.queue_sel = st.queue_sel;
        t.shm_sel = st.shm_sel;
        t.status = st.status;
        t.isr = st.isr;
        t.config_generation = st.config_generation;
        t.epoch = st.epoch.wrapping_add(1);
        let s = st.status;
        let negotiated = s & FEATURES_OK != 0;
        if s & !(ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | DEVICE_NEEDS_RESET | FAILED) != 0
            || (s & DRIVER_OK != 0 && !negotiated)
            || (negotiated
                && (s & (ACKNOWLEDGE | DRIVER) != ACKNOWLEDGE | DRIVER || !t.features_acceptable()))
            || st.isr & !(isr::USED_BUFFER | isr::CONFIG_CHANGE) != 0
            || st.notified >> Q != 0
        {
            return Err(E::Transport);
        }
        let features = t.features();
        let (base, size) = self.ram;
        let end = base.saturating_add(size);
        let contains = |a: u64, l: u64| a >= base && a.checked_add(l).is_some_and(|e| e <= end);
        for (i, (q, qs)) in t.queues.iter_mut().zip(&st.queues).enumerate() {
            if !q.restore(qs, negotiated, features, contains) {
                return Err(E::Queue(i));
            }
        }
        t.notified = (0..Q)
            .filter(|&i| t.queues[i].ready)
            .fold(st.notified, |m, i| m | 1 << i);
        *self = t;
        Ok(())
    }

    /// [`super::Queue::reissue_in_flight`] on every queue (a device that completes in
    /// order); the total. A broken ring is a device error (DEVICE_NEEDS_RESET), as at run
    /// time.
    pub fn reissue_in_flight<M: super::GuestMemory + ?Sized>(&mut self, mem: &M) -> u32 {
        let mut total = 0;
        for i in 0..Q {
            match self.queues[i].reissue_in_flight(mem) {
                Ok(n) => total += u32::from(n),
                Err(e) => self.device_error(e),
            }
        }
        total
    }

    fn features_acceptable(&self) -> bool {
        !self.driver_features_high
            && self.driver_features & !self.device_features == 0
            && self.driver_features & F_VERSION_1 != 0
    }

    fn write_status(&mut self, v: u32) {
        use status::*;
        if v == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        let mut new = v & (ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | FAILED);
        // NEEDS_RESET is the device's bit; the driver can neither set nor clear it.
        let kept = old & !DEVICE_NEEDS_RESET;
        if kept & !new != 0 {
            // §2.1.2: the driver MUST NOT clear a status bit (except by resetting).
            bump(&mut self.counters.refused_writes);
            return;
        }
        if new & FEATURES_OK != 0
            && old & FEATURES_OK == 0
            && (new & (ACKNOWLEDGE | DRIVER) != ACKNOWLEDGE | DRIVER || !self.features_acceptable())
        {
            // The driver re-reads Status and finds FEATURES_OK clear (§3.1.1 step 6).
            new &= !FEATURES_OK;
            bump(&mut self.counters.refused_writes);
        }
        if new & DRIVER_OK != 0 && new & FEATURES_OK == 0 {
            new &= !DRIVER_OK;
            bump(&mut self.counters.refused_writes);
        }
        self.status = new | (old & DEVICE_NEEDS_RESET);
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// A queue register the driver may write only while the queue is stopped.
    fn write_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        match self.queue() {
            Some(q) if !q.ready => f(q),
            _ => bump(&mut self.counters.refused_writes),
        }
    }

    fn write_queue_ready(&mut self, v: u32) {
        let features = self.features();
        let (base, size) = self.ram;
        let negotiated = self.status & status::FEATURES_OK != 0;
        let Some(q) = self.queues.get_mut(self.queue_sel as usize) else {
            bump(&mut self.counters.refused_writes);
            return;
        };
        match (q.ready, v != 0) {
            (false, true) if !negotiated => bump(&mut self.counters.refused_writes),
            (false, true) => {
                let end = base.saturating_add(size);
                let contains =
                    |a: u64, l: u64| a >= base && a.checked_add(l).is_some_and(|e| e <= end);
                if let Err(e) = q.enable(features, contains) {
                    self.device_error(e);
                }
            }
            (true, false) => {
                q.ready = false;
                self.epoch = self.epoch.wrapping_add(1);
            }
            _ => {}
        }
    }

    fn read_reg(&mut self, off: u64) -> Option<u32> {
        let q = self.queues.get(self.queue_sel as usize);
        Some(match off {
            MAGIC_VALUE => MAGIC,
            VERSION => 2,
            DEVICE_ID => self.device_id,
            VENDOR_ID => VENDOR,
            DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features as u32,
                1 => (self.device_features >> 32) as u32,
                _ => 0,
            },
            QUEUE_NUM_MAX => q.map_or(0, |q| q.max.into()),
            QUEUE_READY => q.is_some_and(|q| q.ready).into(),
            INTERRUPT_STATUS => self.isr,
            STATUS => self.status,
            // No shared memory regions: a non-existent region's length and base are -1
            // (§4.2.2).
            SHM_LEN_LOW | SHM_LEN_HIGH | SHM_BASE_LOW | SHM_BASE_HIGH => u32::MAX,
            // VIRTIO_F_RING_RESET is not offered.
            QUEUE_RESET => 0,
            CONFIG_GENERATION => self.config_generation,
            _ => return None,
        })
    }

    fn write_reg(&mut self, off: u64, v: u32) -> bool {
        let hi = |old: u64| (old & 0xFFFF_FFFF) | (u64::from(v) << 32);
        let lo = |old: u64| (old & !0xFFFF_FFFF) | u64::from(v);
        match off {
            DEVICE_FEATURES_SEL => self.device_features_sel = v,
            DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            DRIVER_FEATURES => {
                if self.status & status::FEATURES_OK != 0 {
                    bump(&mut self.counters.refused_writes);
                } else {
                    match self.driver_features_sel {
                        0 => self.driver_features = lo(self.driver_features),
                        1 => self.driver_features = hi(self.driver_features),
                        _ => self.driver_features_high |= v != 0,
                    }
                }
            }
            QUEUE_SEL => self.queue_sel = v,
            QUEUE_NUM => self.write_queue(|q| q.num = v),
            QUEUE_DESC_LOW => self.write_queue(|q| q.desc = lo(q.desc)),
            QUEUE_DESC_HIGH => self.write_queue(|q| q.desc = hi(q.desc)),
            QUEUE_DRIVER_LOW => self.write_queue(|q| q.avail = lo(q.avail)),
            QUEUE_DRIVER_HIGH => self.write_queue(|q| q.avail = hi(q.avail)),
            QUEUE_DEVICE_LOW => self.write_queue(|q| q.used = lo(q.used)),
            QUEUE_DEVICE_HIGH => self.write_queue(|q| q.used = hi(q.used)),
            QUEUE_READY => self.write_queue_ready(v),
            QUEUE_NOTIFY => {
                let ready = self.queues.get(v as usize).is_some_and(|q| q.ready);
                if self.live() && ready {
                    self.notified |= 1 << v;
                } else {
                    bump(&mut self.counters.ignored_notifications);
                }
            }
            INTERRUPT_ACK => self.isr &= !v,
            STATUS => self.write_status(v),
            SHM_SEL => self.shm_sel = v,
            QUEUE_RESET => {}
            _ => return false,
        }
        true
    }

    /// A read of the window; `config` is the device's configuration space.
    pub fn read(&mut self, a: Access, config: &[u8]) -> u64 {
        if a.offset >= CONFIG {
            let off = a.offset - CONFIG;
            if !matches!(a.size, 1 | 2 | 4) || !off.is_multiple_of(a.size.into()) {
                bump(&mut self.counters.bad_accesses);
                return 0;
            }
            let mut b = [0u8; 4];
            for (i, byte) in b.iter_mut().take(a.size.into()).enumerate() {
                *byte = usize::try_from(off + i as u64)
                    .ok()
                    .and_then(|o| config.get(o))
                    .copied()
                    .unwrap_or(0);
            }
            return u32::from_le_bytes(b).into();
        }
        if a.size != 4 || !a.offset.is_multiple_of(4) {
            bump(&mut self.counters.bad_accesses);
            return 0;
        }
        match self.read_reg(a.offset) {
            Some(v) => v.into(),
            None => {
                bump(&mut self.counters.bad_accesses);
                0
            }
        }
    }

    /// A write to the window. Neither device has a writable configuration field (blk's
    /// `writeback` needs VIRTIO_BLK_F_CONFIG_WCE, not offered), so those are ignored.
    pub fn write(&mut self, a: Access, value: u64) {
        if a.offset >= CONFIG || a.size != 4 || !a.offset.is_multiple_of(4) {
            bump(&mut self.counters.bad_accesses);
            return;
        }
        if !self.write_reg(a.offset, value as u32) {
            bump(&mut self.counters.bad_accesses);
        }
    }
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
mod tests;

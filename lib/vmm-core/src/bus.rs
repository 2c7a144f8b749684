//! Routes decoded MMIO accesses to emulated devices. The bus owns the policy for
//! addresses no device claims; each device owns the policy for bad accesses
//! inside its own window (see docs/vmm.md, "Bad-input policy").

use crate::mmio::{MmioAccess, XZR};

/// A device's answer to a single access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    /// The device signals a bus error (AXI SLVERR / APB PSLVERR): the guest
    /// gets a synchronous external abort.
    Abort,
}

/// Everything the device needs to know about one access inside its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The vCPU doing the access (banked registers, SGI source).
    pub vcpu: usize,
    /// Which of the device's windows was hit (a device may map several, e.g. a
    /// GICv3 distributor and its redistributors).
    pub region: u8,
    /// Byte offset into the window.
    pub offset: u64,
    /// 1, 2, 4 or 8.
    pub size: u8,
}

/// An emulated MMIO device. Implementations must not panic on any input: every
/// offset, size and value the guest can produce is a valid call.
pub trait MmioDevice {
    fn read(&mut self, a: Access) -> Result<u64, DeviceError>;
    fn write(&mut self, a: Access, value: u64) -> Result<(), DeviceError>;
}

/// What the VMM must do to finish the exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOutcome {
    /// Load complete: set X`reg` (never XZR) to `value`, advance the PC.
    Load { reg: u8, value: u64 },
    /// Store complete (or load into XZR): advance the PC.
    Done,
    /// Inject a synchronous external abort at the faulting instruction.
    ExternalAbort,
}

/// Why a window could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Table full (`N` devices or windows).
    Full,
    /// Zero size or base + size overflows.
    BadRange,
    /// Intersects an existing window.
    Overlap,
    /// The device id did not come from `add_device`.
    NoSuchDevice,
}

/// Handle for a device added to a bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceId(usize);

#[derive(Debug, Clone, Copy)]
struct Window {
    base: u64,
    size: u64,
    device: usize,
    region: u8,
}

/// Up to `N` devices and `N` windows. Fixed arrays, no allocator; it is cheap to
/// build one per exit if the VMM prefers short borrows.
pub struct Bus<'a, const N: usize> {
    devices: [Option<&'a mut dyn MmioDevice>; N],
    windows: [Option<Window>; N],
}

impl<const N: usize> Default for Bus<'_, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, const N: usize> Bus<'a, N> {
    pub fn new() -> Self {
        Self {
            devices: [const { None }; N],
            windows: [None; N],
        }
    }

    pub fn add_device(&mut self, dev: &'a mut dyn MmioDevice) -> Result<DeviceId, MapError> {
        let slot = self
            .devices
            .iter()
            .position(Option::is_none)
            .ok_or(MapError::Full)?;
        self.devices[slot] = Some(dev);
        Ok(DeviceId(slot))
    }

    /// Maps `[base, base + size)` to `region` of device `id`.
    pub fn map(&mut self, id: DeviceId, region: u8, base: u64, size: u64) -> Result<(), MapError> {
        if !matches!(self.devices.get(id.0), Some(Some(_))) {
            return Err(MapError::NoSuchDevice);
        }
        let end = base.checked_add(size).ok_or(MapError::BadRange)?;
        if size == 0 {
            return Err(MapError::BadRange);
        }
        if self
            .windows
            .iter()
            .flatten()
            .any(|w| base < w.base + w.size && w.base < end)
        {
            return Err(MapError::Overlap);
        }
        let slot = self
            .windows
            .iter()
            .position(Option::is_none)
            .ok_or(MapError::Full)?;
        self.windows[slot] = Some(Window {
            base,
            size,
            device: id.0,
            region,
        });
        Ok(())
    }

    /// The device behind `id`, e.g. to poll an interrupt line after an access.
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut (dyn MmioDevice + 'a)> {
        match self.devices.get_mut(id.0) {
            Some(Some(d)) => Some(&mut **d),
            _ => None,
        }
    }

    /// Performs `acc` for `vcpu`; `reg_value` is the source register for a store.
    /// Unmapped addresses and accesses running past the end of a window abort:
    /// on QEMU virt and on real interconnects an undecoded address is a decode
    /// error (DECERR), which the CPU reports as a synchronous external abort.
    pub fn dispatch(&mut self, vcpu: usize, acc: &MmioAccess, reg_value: u64) -> MmioOutcome {
        let Some(w) = self
            .windows
            .iter()
            .flatten()
            .find(|w| acc.ipa >= w.base && acc.ipa - w.base < w.size)
            .copied()
        else {
            return MmioOutcome::ExternalAbort;
        };
        let Some(Some(dev)) = self.devices.get_mut(w.device) else {
            return MmioOutcome::ExternalAbort;
        };
        perform(&mut **dev, vcpu, w.region, w.base, w.size, acc, reg_value)
    }
}

/// Whether `[base, base + size)` may be mapped beside `mapped`: the rule of [`Bus::map`]
/// (not empty, no overflow, no overlap), for routers that keep their own windows
/// (`Vm`'s exit path, which builds no bus per exit).
pub fn admissible(mapped: impl IntoIterator<Item = (u64, u64)>, base: u64, size: u64) -> bool {
    let Some(end) = base.checked_add(size) else {
        return false;
    };
    size != 0 && mapped.into_iter().all(|(b, s)| !(base < b + s && b < end))
}

/// Performs `acc` on `dev`, whose window `region` is `[base, base + size)` and holds
/// `acc.ipa`: what [`Bus::dispatch`] does once it has found the window. An access outside
/// the window or running past its end aborts.
#[inline]
pub fn perform<D: MmioDevice + ?Sized>(
    dev: &mut D,
    vcpu: usize,
    region: u8,
    base: u64,
    size: u64,
    acc: &MmioAccess,
    reg_value: u64,
) -> MmioOutcome {
    let offset = acc.ipa.wrapping_sub(base);
    if offset >= size || size - offset < acc.size as u64 {
        return MmioOutcome::ExternalAbort;
    }
    let a = Access {
        vcpu,
        region,
        offset,
        size: acc.size,
    };
    if acc.write {
        match dev.write(a, acc.store_value(reg_value)) {
            Ok(()) => MmioOutcome::Done,
            Err(DeviceError::Abort) => MmioOutcome::ExternalAbort,
        }
    } else {
        match dev.read(a) {
            Ok(_) if acc.reg == XZR => MmioOutcome::Done,
            Ok(raw) => MmioOutcome::Load {
                reg: acc.reg,
                value: acc.load_value(raw),
            },
            Err(DeviceError::Abort) => MmioOutcome::ExternalAbort,
        }
    }
}

#[cfg(test)]
#[path = "bus_tests.rs"]
mod tests;

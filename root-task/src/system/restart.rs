//! Restarting a PD (the root service's `Request::Restart`, and the monitor itself): its
//! thread switched to its standby incarnation if that is fresh (`standby.rs`), else its
//! running incarnation restored in place (`restore.rs`). The generation it restarts with is
//! ours to count and publish.

use axolotl_boot_plan::Pd;
use axolotl_root_service::How;
use axolotl_sys::println;

use super::build::{Error, PD_CSPACE_DATA, Step, System, pages};
use super::standby::{self, Incarnation};

impl System {
    /// Our generation of PD `i` (0 until it first restarts).
    pub fn generation(&self, i: usize) -> Option<u64> {
        self.generations.get(i).copied()
    }

    /// Restarts PD `i` from its pristine image: stopped (its pending IPC cancelled), its
    /// memory as loaded (text, data, zeroed bss, stack and IPC buffer) and its CSpace as the
    /// plan fills it (whatever it did to its caps is undone), started at its entry with
    /// `x0 = generation`, the larger of `at_least` and one more than its last (returned), and
    /// `x1 = START_FRESH` if `fresh` (it is to begin as at boot: a VM start or reboot).
    /// With a fresh standby incarnation the thread is switched to it (a few invocations);
    /// otherwise the running incarnation is restored in place. Regions it maps are shared
    /// state and stay: the ring protocols resynchronise them.
    pub fn restart(&mut self, i: usize, at_least: u64, fresh: bool) -> Result<(u64, How), Error> {
        let flags = if fresh { axolotl_abi::START_FRESH } else { 0 };
        let plan = self.plan;
        let pd = plan.pds.get(i).ok_or(Error::Plan("PD index"))?;
        let generation = at_least.max(self.generations[i] + 1);
        let o = self.pds[i];
        o.tcb.suspend().step("suspend")?;
        // Before the new incarnation runs: whatever it publishes, its peers can check.
        // (The monitor never hands out a generation above u32::MAX.)
        self.gen_table
            .publish(i as u8, u32::try_from(generation).unwrap_or(u32::MAX));
        let switched = match standby::take(i) {
            Some(inc) => match self.switch(i, pd, inc, generation, flags) {
                Ok(()) => {
                    standby::switched(i);
                    true
                }
                Err(e) => {
                    println!(
                        "root-task: switching {} to its standby failed: {e}; restarting in place",
                        pd.name.as_str()
                    );
                    standby::broken(i);
                    false
                }
            },
            None => false,
        };
        if !switched {
            let src = self.sources()?;
            let span = self.page_spans.get(i).cloned().unwrap_or(0..0);
            src.refill(pd, &pages()[span], o.vspace)?;
            src.empty_cspace(pd, o.cnode, false)?;
            src.fill_cspace(i, pd, o.cnode, o.vspace)?;
            self.set_entry_registers(i, pd, generation, flags, true)?;
        }
        self.generations[i] = generation;
        Ok((
            generation,
            if switched { How::Standby } else { How::InPlace },
        ))
    }

    /// Points PD `i`'s stopped thread at its standby `inc` and starts it there; `inc` gets
    /// the incarnation it left.
    fn switch(
        &mut self,
        i: usize,
        pd: &Pd,
        inc: &mut Incarnation,
        generation: u64,
        flags: u64,
    ) -> Result<(), Error> {
        let o = self.pds[i];
        o.tcb
            .configure(
                o.fault_ep,
                inc.cnode,
                PD_CSPACE_DATA,
                inc.vspace,
                0,
                pd.ipc_buffer,
                inc.ipc_frame,
            )
            .step("switch TCB spaces")?;
        let span = self.page_spans.get(i).cloned().unwrap_or(0..0);
        let left = Incarnation {
            cnode: o.cnode,
            vspace: o.vspace,
            ipc_frame: o.ipc_frame,
            pages: span,
        };
        let now = core::mem::replace(inc, left);
        self.pds[i].cnode = now.cnode;
        self.pds[i].vspace = now.vspace;
        self.pds[i].ipc_frame = now.ipc_frame;
        self.page_spans[i] = now.pages;
        self.set_entry_registers(i, pd, generation, flags, true)
    }

    /// Stops PD `i`, a VMM, and every vCPU of its VM `vm` (`vm stop`): the guest stops where
    /// it is; a fresh restart of the VMM boots it anew, starting the vCPUs it needs.
    pub fn stop_vm(&mut self, i: usize, vm: u8) -> Result<(), Error> {
        self.pds[i].tcb.suspend().step("suspend the VMM")?;
        for v in self.vcpus.iter().filter(|v| v.vm == vm) {
            v.tcb.suspend().step("suspend a vCPU")?;
        }
        Ok(())
    }
}

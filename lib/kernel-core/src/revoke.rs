//! Revoke (seL4 `cteRevoke`): delete every descendant of a cap, i.e. the run of caps after it
//! in the MDB of which it is the parent. Each deletion may be long (zombies) and every step is
//! a preemption point; the state is the MDB itself, so a preempted revoke is simply restarted.

use crate::delete::{Finalise, Preempted, delete};
use crate::mdb::is_mdb_parent_of;
use crate::slot::SlotRef;

pub fn revoke(slot: SlotRef, fin: &mut impl Finalise) -> Result<(), Preempted> {
    // If a cascade empties `slot` itself (it lived in a CNode being destroyed), its MDB node is
    // null and the loop ends: what is left no longer has this parent.
    while let Some(next) = slot.next() {
        if !is_mdb_parent_of(slot, next) {
            break;
        }
        delete(next, fin)?;
        if fin.should_preempt() {
            return Err(Preempted);
        }
    }
    Ok(())
}

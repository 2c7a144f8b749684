use super::{AsidControl, AsidPool, CNode, Frame, PageTable, VSpace, invoke_unit};
use crate::encode;
use crate::invoke::{InvocationError, invoke_word};
use axolotl_abi::Rights;

/// Page attribute bits of PageMap/PageTableMap (docs/abi.md).
pub mod attr {
    pub const CACHEABLE: u64 = 1 << 0;
    pub const EXECUTABLE: u64 = 1 << 1;
    pub const DEVICE: u64 = 1 << 2;
}

type R = Result<(), InvocationError>;

impl Frame {
    pub fn map(self, vspace: VSpace, vaddr: u64, rights: Rights, attributes: u64) -> R {
        invoke_unit(
            self.0,
            &encode::page_map(vspace.0, vaddr, rights, attributes),
        )
    }
    pub fn unmap(self) -> R {
        invoke_unit(self.0, &encode::page_unmap())
    }
    /// The frame's physical address.
    pub fn get_address(self) -> Result<u64, InvocationError> {
        invoke_word(self.0, &encode::page_get_address())
    }
}

impl PageTable {
    pub fn map(self, vspace: VSpace, vaddr: u64, attributes: u64) -> R {
        invoke_unit(self.0, &encode::page_table_map(vspace.0, vaddr, attributes))
    }
    pub fn unmap(self) -> R {
        invoke_unit(self.0, &encode::page_table_unmap())
    }
}

impl AsidControl {
    /// Creates an ASID pool cap in slot `index`/`depth` of `root`.
    pub fn make_pool(self, root: CNode, index: u64, depth: u64) -> R {
        invoke_unit(
            self.0,
            &encode::asid_control_make_pool(root.0, index, depth),
        )
    }
}

impl AsidPool {
    pub fn assign(self, vspace: VSpace) -> R {
        invoke_unit(self.0, &encode::asid_pool_assign(vspace.0))
    }
}

impl VSpace {
    /// Cleans `[start, end)` of this VSpace to the point of coherency (seL4's
    /// `ARM_VSpace_Clean_Data`): data written through cacheable mappings becomes visible to
    /// what reads memory directly (a guest with its MMU off, a device). Every page of the
    /// range must be mapped; at most `MAX_CACHE_OP_BYTES` (2 MiB) per call.
    pub fn clean_data(self, start: u64, end: u64) -> R {
        invoke_unit(self.0, &encode::vspace_clean_data(start, end))
    }

    /// Makes `[start, end)`, written as data, visible to instruction fetch (seL4's
    /// `ARM_VSpace_Unify_Instruction`). Same limits as [`VSpace::clean_data`].
    pub fn unify_instruction(self, start: u64, end: u64) -> R {
        invoke_unit(self.0, &encode::vspace_unify_instruction(start, end))
    }
}

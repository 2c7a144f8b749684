use super::{cap_type, invoke_unit};
use crate::encode;
use crate::invoke::InvocationError;
use axolotl_abi::Rights;

cap_type!(
    /// A CNode, named by its address in the caller's CSpace. Slot arguments are
    /// (index, depth) paths resolved from this CNode (or the `src_root` given).
    CNode
);

type R = Result<(), InvocationError>;

impl CNode {
    pub fn copy(
        self,
        dest: u64,
        dest_depth: u64,
        src_root: CNode,
        src: u64,
        src_depth: u64,
        rights: Rights,
    ) -> R {
        invoke_unit(
            self.0,
            &encode::cnode_copy(dest, dest_depth, src_root.0, src, src_depth, rights),
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn mint(
        self,
        dest: u64,
        dest_depth: u64,
        src_root: CNode,
        src: u64,
        src_depth: u64,
        rights: Rights,
        badge: u64,
    ) -> R {
        let e = encode::cnode_mint(dest, dest_depth, src_root.0, src, src_depth, rights, badge);
        invoke_unit(self.0, &e)
    }

    /// `move` is a keyword.
    pub fn move_(self, dest: u64, dest_depth: u64, src_root: CNode, src: u64, src_depth: u64) -> R {
        invoke_unit(
            self.0,
            &encode::cnode_move(dest, dest_depth, src_root.0, src, src_depth),
        )
    }

    pub fn mutate(
        self,
        dest: u64,
        dest_depth: u64,
        src_root: CNode,
        src: u64,
        src_depth: u64,
        data: u64,
    ) -> R {
        invoke_unit(
            self.0,
            &encode::cnode_mutate(dest, dest_depth, src_root.0, src, src_depth, data),
        )
    }

    /// Moves `pivot` to `dest` and `src` to `pivot` (with new badges), atomically.
    #[allow(clippy::too_many_arguments)]
    pub fn rotate(
        self,
        dest: u64,
        dest_depth: u64,
        pivot_root: CNode,
        pivot: u64,
        pivot_depth: u64,
        pivot_badge: u64,
        src_root: CNode,
        src: u64,
        src_depth: u64,
        src_badge: u64,
    ) -> R {
        let e = encode::cnode_rotate(
            dest,
            dest_depth,
            pivot_root.0,
            pivot,
            pivot_depth,
            pivot_badge,
            src_root.0,
            src,
            src_depth,
            src_badge,
        );
        invoke_unit(self.0, &e)
    }

    pub fn delete(self, index: u64, depth: u64) -> R {
        invoke_unit(self.0, &encode::cnode_delete(index, depth))
    }

    pub fn revoke(self, index: u64, depth: u64) -> R {
        invoke_unit(self.0, &encode::cnode_revoke(index, depth))
    }

    pub fn cancel_badged_sends(self, index: u64, depth: u64) -> R {
        invoke_unit(self.0, &encode::cnode_cancel_badged_sends(index, depth))
    }
}

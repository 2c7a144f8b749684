use super::{CNode, Untyped, invoke_unit};
use crate::encode;
use crate::invoke::InvocationError;
use axolotl_abi::ObjectType;

impl Untyped {
    /// Creates `num_objects` objects of `ty` in slots `node_offset..` of the CNode found at
    /// `node_index`/`node_depth` in `root` (depth 0: `root` itself).
    #[allow(clippy::too_many_arguments)]
    pub fn retype(
        self,
        ty: ObjectType,
        size_bits: u64,
        root: CNode,
        node_index: u64,
        node_depth: u64,
        node_offset: u64,
        num_objects: u64,
    ) -> Result<(), InvocationError> {
        self.retype_raw(
            ty as u64,
            size_bits,
            root,
            node_index,
            node_depth,
            node_offset,
            num_objects,
        )
    }

    /// Retype with a raw type word, for tests of invalid types.
    #[allow(clippy::too_many_arguments)]
    pub fn retype_raw(
        self,
        ty: u64,
        size_bits: u64,
        root: CNode,
        node_index: u64,
        node_depth: u64,
        node_offset: u64,
        num_objects: u64,
    ) -> Result<(), InvocationError> {
        let e = encode::untyped_retype(
            ty,
            size_bits,
            root.0,
            node_index,
            node_depth,
            node_offset,
            num_objects,
        );
        invoke_unit(self.0, &e)
    }
}

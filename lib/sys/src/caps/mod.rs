//! Typed capability addresses: one newtype per object type, with the object's invocations.
//! The types only document intent; the kernel checks what a slot really holds.

mod cnode;
mod irq;
mod tcb;
mod untyped;
mod vcpu;
mod vm;

pub use vm::attr as vm_attr;

pub use cnode::CNode;
pub use tcb::{CpuTime, Tcb};
pub use vcpu::Vcpu;

macro_rules! cap_type {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub axolotl_abi::CPtr);

        impl $name {
            pub const fn cptr(self) -> axolotl_abi::CPtr {
                self.0
            }
        }

        impl From<$name> for axolotl_abi::CPtr {
            fn from(c: $name) -> axolotl_abi::CPtr {
                c.0
            }
        }
    )*};
}
pub(crate) use cap_type;

cap_type!(
    /// Untyped memory: the source of every other object.
    Untyped,
    Endpoint,
    Notification,
    /// A 4 KiB or 2 MiB frame.
    Frame,
    PageTable,
    /// The root of a VSpace.
    VSpace,
    IrqControl,
    IrqHandler,
    AsidControl,
    AsidPool,
    /// The domain cap (seL4's `seL4_DomainSet`): thread domains and the domain schedule.
    DomainSet,
);

pub(crate) use crate::invoke::invoke_unit;
use crate::{MessageInfo, Msg, syscall};

impl Endpoint {
    pub fn send(self, info: MessageInfo, mrs: [u64; 4]) {
        syscall::send(self.0, info, mrs)
    }
    pub fn nb_send(self, info: MessageInfo, mrs: [u64; 4]) {
        syscall::nb_send(self.0, info, mrs)
    }
    pub fn call(self, info: MessageInfo, mrs: [u64; 4]) -> Msg {
        syscall::call(self.0, info, mrs)
    }
    pub fn recv(self) -> Msg {
        syscall::recv(self.0)
    }
    pub fn nb_recv(self) -> Msg {
        syscall::nb_recv(self.0)
    }
    pub fn reply_recv(self, info: MessageInfo, mrs: [u64; 4]) -> Msg {
        syscall::reply_recv(self.0, info, mrs)
    }
}

impl Notification {
    pub fn signal(self) {
        syscall::signal(self.0)
    }
    pub fn wait(self) -> u64 {
        syscall::wait(self.0)
    }
    pub fn poll(self) -> u64 {
        syscall::poll(self.0)
    }
}

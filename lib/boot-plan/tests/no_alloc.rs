//! Decoding must not allocate: the root task has no allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; counting touches only a thread-local.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: our caller's contract for `layout` is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from System, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_allocates_nothing_and_equals_the_plan() {
    let plan = axolotl_boot_plan::build(&common::hello(), &common::hello_images()).unwrap();
    let mut buf = [0u8; 8192];
    let used = axolotl_boot_plan::encode(&plan, &mut buf).unwrap().len();
    // Decode into a static-like box made beforehand, as the root task would into a static.
    let mut slot = Box::new(None);
    let before = ALLOCS.with(Cell::get);
    *slot = Some(axolotl_boot_plan::decode(&buf[..used]).unwrap());
    let after = ALLOCS.with(Cell::get);
    assert_eq!(after - before, 0, "decode allocated");
    assert_eq!(slot.as_ref().as_ref(), Some(&plan));
    // The counter itself works.
    let v = vec![1u8];
    assert!(ALLOCS.with(Cell::get) > after, "{v:?}");
}

//! Dropping a `DataKey` wipes it: the memory handed back to the allocator holds zeros.
//!
//! A global allocator for this test binary only looks at the block being freed, just
//! before freeing it, when it is the one the test watches; nothing else is changed. A plain
//! array dropped the same way is the control: its bytes are still there, so the check can
//! see a key that was not wiped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use cmk_envelope::DataKey;
const DATA_KEY_LEN: usize = DataKey::LEN;

struct Inspecting;

static WATCHED: AtomicUsize = AtomicUsize::new(0);
static SEEN: [AtomicU8; DATA_KEY_LEN] = [const { AtomicU8::new(0xff) }; DATA_KEY_LEN];
static WAS_SEEN: AtomicBool = AtomicBool::new(false);

// SAFETY: every call goes to `System` with the caller's own arguments; `dealloc` first
// reads the block it is handed, which is still allocated and `layout.size()` bytes long.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ptr as usize == WATCHED.load(Ordering::SeqCst) && layout.size() == DATA_KEY_LEN {
            for (i, seen) in SEEN.iter().enumerate() {
                seen.store(unsafe { ptr.add(i).read() }, Ordering::SeqCst);
            }
            WAS_SEEN.store(true, Ordering::SeqCst);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

/// The bytes of the watched block as it was freed.
fn freed_bytes_of(address: usize, drop_it: impl FnOnce()) -> [u8; DATA_KEY_LEN] {
    WAS_SEEN.store(false, Ordering::SeqCst);
    WATCHED.store(address, Ordering::SeqCst);
    drop_it();
    WATCHED.store(0, Ordering::SeqCst);
    assert!(WAS_SEEN.load(Ordering::SeqCst), "the block was not freed");
    std::array::from_fn(|i| SEEN[i].load(Ordering::SeqCst))
}

#[test]
fn a_dropped_data_key_leaves_only_zeros_and_an_unwiped_array_does_not() {
    assert_eq!(std::mem::size_of::<DataKey>(), DATA_KEY_LEN);
    let control = Box::new([0x5a_u8; DATA_KEY_LEN]);
    let address = std::ptr::from_ref(&*control) as usize;
    assert_eq!(
        freed_bytes_of(address, || drop(control)),
        [0x5a; DATA_KEY_LEN]
    );

    let key = Box::new(DataKey::from_bytes([0x5a; DATA_KEY_LEN]));
    let address = std::ptr::from_ref(&*key) as usize;
    assert_eq!(freed_bytes_of(address, || drop(key)), [0; DATA_KEY_LEN]);
}

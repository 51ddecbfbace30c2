//! The behaviour every backend must show: the crate's published suite
//! (`cmk_envelope::test_support`, feature `test-support`), run by each backend's tests.
#![allow(unused_imports)]

pub use cmk_envelope::test_support::{run, with_slots, Backend};

use std::sync::Arc;

use cmk_envelope::{DataKey, KeyWrapper, SlotContext, Unwrapped};

/// A slot of another format (Azure Storage client-side encryption v2 wraps `"2.0"` padded
/// to 8 bytes, then the key): the backend wraps the prefix with the key and checks it
/// when unwrapping; the same slot read as one of ours, or with another prefix, gives no
/// data key.
pub async fn prefixed_slots_round_trip(key: Arc<dyn KeyWrapper>) {
    let no_message = [0u8; 32];
    let plain = SlotContext::new(&no_message);
    let v2 = plain.with_key_prefix(b"2.0\0\0\0\0\0");
    let v21 = plain.with_key_prefix(b"2.1\0\0\0\0\0");
    let data_key = DataKey::from_slice(&[0x5a; 32]).expect("key");
    let slot = key
        .wrap_key(&data_key, v2)
        .await
        .expect("wrap with a prefix");
    match key
        .unwrap_key(&slot, v2)
        .await
        .expect("unwrap with the prefix")
    {
        Unwrapped::Key(back) => assert_eq!(back.expose_secret(), data_key.expose_secret()),
        Unwrapped::NotMine => panic!("the backend's own slot"),
    }
    key.confirm_wrap(&slot, &data_key, v2)
        .await
        .expect("the prefixed slot is confirmed");
    for other in [plain, v21] {
        let read = key.unwrap_key(&slot, other).await;
        assert!(
            !matches!(read, Ok(Unwrapped::Key(_))),
            "a prefixed slot read with another prefix gives no key"
        );
    }
}

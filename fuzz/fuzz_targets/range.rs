//! Range reads: any range of any input either fails or matches the in-memory open.
#![no_main]

use std::io::Cursor;

use cmk_envelope_fuzz::{block_on, Case, Taker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (bounds, rest) = data.split_at(data.len().min(4));
    let mut bounds = Taker(bounds);
    let (a, b) = (u64::from(bounds.u16()), u64::from(bounds.u16()));
    let case = Case::from_fuzz(rest);
    let expected = case.open_in_memory();
    let ranged = block_on(
        case.envelope
            .open_range(Cursor::new(&case.sealed), &case.aad, a..b),
    );
    if let Ok(opened) = &ranged {
        let slice = opened.plaintext();
        // A range read verifies only its segments, so it may succeed where a whole open
        // fails on another segment; but what it returns was sealed.
        if !case.edited || !case.plaintext.is_empty() {
            let start = usize::try_from(a).expect("small");
            assert!(
                case.plaintext.get(start..start + slice.len()) == Some(slice),
                "range returned bytes that were never sealed there"
            );
        }
    }
    if let Some(plaintext) = expected {
        let len = plaintext.len() as u64;
        if a <= b && b <= len {
            let opened = ranged.expect("a valid range of a valid envelope opens");
            assert!(opened.plaintext() == &plaintext[a as usize..b as usize]);
        } else {
            assert!(ranged.is_err(), "an out-of-range read succeeded");
        }
    }
});

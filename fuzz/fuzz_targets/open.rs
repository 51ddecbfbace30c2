//! The whole in-memory open path, with a working key (see `InsecureCleartextWrapper`):
//! `open`, `open_into` over a dirty buffer, `open_in_place` and `open_detached` agree, and
//! never release plaintext that was not sealed. The same bytes are also opened through a
//! branch wrapper and an RSA keyring (the shared branch vectors' keys), which must never
//! panic and open nothing an unedited seal did not make.
#![no_main]

use cmk_envelope_fuzz::{block_on, branch, Case};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let case = Case::from_fuzz(data);
    let expected = case.open_in_memory();

    let mut into = vec![0xAA; 100];
    let opened_into = block_on(case.envelope.open_into(&case.sealed, &case.aad, &mut into));
    assert_eq!(
        opened_into.is_ok(),
        expected.is_some(),
        "open_into disagrees with open"
    );
    match &expected {
        Some(plaintext) => assert!(into == *plaintext),
        None => assert!(into.is_empty(), "a failed open_into left bytes behind"),
    }

    let mut in_place = case.sealed.clone();
    let opened_in_place = block_on(case.envelope.open_in_place(&mut in_place, &case.aad));
    assert_eq!(
        opened_in_place.is_ok(),
        expected.is_some(),
        "open_in_place disagrees"
    );
    match &expected {
        Some(plaintext) => assert!(in_place == *plaintext),
        None => assert!(
            in_place.is_empty(),
            "a failed open_in_place left bytes behind"
        ),
    }

    if let Ok((_, header_len)) = cmk_envelope::format::Header::parse_prefix(&case.sealed) {
        let (header, body) = case.sealed.split_at(header_len);
        let detached = block_on(case.envelope.open_detached(header, body, &case.aad));
        assert_eq!(
            detached.is_ok(),
            expected.is_some(),
            "open_detached disagrees"
        );
    }

    // Through the branch vectors' keys: branch slots via their store and RSA CMK, RSA
    // slots via their keyring. A case sealed here under the cleartext key never opens there.
    let through_branch = block_on(branch::vectors_envelope().open(&case.sealed, &case.aad));
    if through_branch.is_ok() {
        assert!(
            case.edited,
            "a cleartext-key envelope opened under the vectors' keys"
        );
    }
});

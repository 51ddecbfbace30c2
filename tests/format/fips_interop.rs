//! Envelopes sealed on the FIPS module open on the default build, and the reverse.
//!
//! One process links one AWS-LC (the FIPS module or not), so the two builds meet through
//! files:
//! - committed fixtures (`tests/fixtures/fips-interop/`): a keyring and one envelope sealed
//!   by each build, opened by every build;
//! - a fresh exchange within one test run: each build seals into
//!   `target/fips-interop/{mode}/` and opens what the other build left there. The test
//!   command runs the FIPS build (all features) before the default one, so every CI run
//!   checks FIPS → default with envelopes made minutes earlier.
//!
//! `cargo test [--features fips] --test fips_interop -- --ignored` rewrites this build's
//! fixture.
#![cfg(feature = "aws-lc")]

use crate::support;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmk_envelope::crypto::{fips_status, FipsStatus};
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};
use support::block_on;

const PLAINTEXT: &[u8] = b"sealed on one AWS-LC, opened on the other";
const AAD: &[u8] = b"fips-interop";

fn this_mode() -> &'static str {
    if fips_status() == FipsStatus::Enabled {
        "fips"
    } else {
        "default"
    }
}

fn other_mode() -> &'static str {
    if this_mode() == "fips" {
        "default"
    } else {
        "fips"
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fips-interop")
}

fn envelope_for(keyring_dir: &Path) -> Envelope {
    let keyring = Keyring::open(support::private_copy_kept(keyring_dir)).expect("keyring");
    let key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("interop").expect("key"));
    Envelope::builder()
        .seal_with(key)
        .open_with_all(keyring.openers().expect("keyring"))
        .build()
        .expect("envelope")
}

fn opens(envelope: &Envelope, sealed: &Path) {
    let bytes = std::fs::read(sealed).unwrap_or_else(|e| panic!("{}: {e}", sealed.display()));
    let opened = block_on(envelope.open(&bytes, AAD))
        .unwrap_or_else(|e| panic!("{} ({} build): {e}", sealed.display(), this_mode()));
    assert_eq!(opened.plaintext(), PLAINTEXT);
}

#[test]
fn committed_envelopes_from_both_builds_open_here() {
    let envelope = envelope_for(&fixtures().join("keyring"));
    for mode in ["fips", "default"] {
        opens(&envelope, &fixtures().join(format!("sealed-{mode}.cmke")));
    }
}

#[test]
fn what_the_other_build_sealed_in_this_run_opens_here() {
    let exchange = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fips-interop");
    let envelope = envelope_for(&fixtures().join("keyring"));
    let mine = exchange.join(this_mode());
    std::fs::create_dir_all(&mine).expect("mkdir");
    let sealed = block_on(envelope.seal(PLAINTEXT, AAD)).expect("seal");
    std::fs::write(mine.join("sealed.cmke"), sealed).expect("write");

    let theirs = exchange.join(other_mode()).join("sealed.cmke");
    if theirs.exists() {
        opens(&envelope, &theirs);
    } else if std::env::var("CMKE_FIPS_EXCHANGE").as_deref() == Ok("required") {
        // The test command runs the FIPS build first and sets this for the builds after
        // it: a missing envelope there means the exchange is broken, not merely early.
        panic!(
            "no envelope from the {} build at {}: CMKE_FIPS_EXCHANGE=required",
            other_mode(),
            theirs.display()
        );
    } else {
        // The other build has not run the tests in this checkout yet; the committed
        // fixtures above still cover the direction.
        eprintln!(
            "SKIPPED: no envelope from the {} build yet (set CMKE_FIPS_EXCHANGE=required to \
             make this a failure)",
            other_mode()
        );
    }
}

#[test]
#[ignore = "rewrites this build's committed fixture"]
fn write_fixture_for_this_build() {
    let keyring_dir = fixtures().join("keyring");
    if !keyring_dir.exists() {
        std::fs::create_dir_all(fixtures()).expect("mkdir");
        Keyring::create(&keyring_dir)
            .expect("keyring")
            .create_key("interop")
            .expect("key");
    }
    let sealed = block_on(envelope_for(&keyring_dir).seal(PLAINTEXT, AAD)).expect("seal");
    std::fs::write(
        fixtures().join(format!("sealed-{}.cmke", this_mode())),
        sealed,
    )
    .expect("write");
}

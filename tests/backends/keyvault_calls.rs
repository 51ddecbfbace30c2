//! Remote calls per operation against the Key Vault double, counted exactly: the library
//! makes the fewest calls each operation needs, and decides what the kids alone decide
//! before any call.
#![cfg(all(feature = "insecure-loopback-vault", feature = "aws-lc"))]

use crate::support;
use support::keyvault_double;
use support::slot_kid;

use std::collections::BTreeMap;
use std::sync::Arc;

use cmk_envelope::azure::{KeyVaultOptions, KeyVaultWrapper};
use cmk_envelope::{Envelope, Error, KeyWrapper, RewrapTarget};
use keyvault_double::{counts, quick_options, KeyVaultDouble, TOKEN};
use support::block_on;

const OBJECTS: usize = 10;

fn lazily(url: &str, options: KeyVaultOptions) -> Arc<dyn KeyWrapper> {
    Arc::new(
        KeyVaultWrapper::connect_lazily(
            url,
            cmk_envelope::azure::loopback::FixedTokenCredential::new(TOKEN),
            options,
        )
        .expect("client"),
    )
}

#[test]
fn each_operation_makes_the_fewest_remote_calls() {
    let vault = KeyVaultDouble::start("contoso");
    let v1 = vault.create_key("orders", 2048);
    let url = vault.key_url("orders");

    // Sealing: one key check per refresh interval, then local wraps.
    let sealer = lazily(&url, quick_options(&[&vault]));
    assert_eq!(
        vault.authenticated_calls(),
        counts(&[]),
        "connect_lazily makes no call"
    );
    let writer = Envelope::builder()
        .seal_with(Arc::clone(&sealer))
        .build()
        .expect("envelope");
    let objects: Vec<Vec<u8>> = (0..OBJECTS)
        .map(|i| block_on(writer.seal(format!("record {i}").as_bytes(), b"")).expect("seal"))
        .collect();
    assert_eq!(vault.authenticated_calls(), counts(&[("get", 1)]));

    // Opening N objects in a new process: N unwrapKey, and at most one other call (the
    // lazy re-wrap's look at the current version).
    vault.reset_calls();
    let reader = Envelope::builder()
        .open_with(lazily(&url, quick_options(&[&vault])))
        .build()
        .expect("envelope");
    for object in &objects {
        block_on(reader.open(object, b"")).expect("open");
    }
    let opened = vault.authenticated_calls();
    assert_eq!(opened.get("unwrapKey"), Some(&OBJECTS), "{opened:?}");
    assert!(opened.get("get").copied().unwrap_or(0) <= 1, "{opened:?}");
    assert_eq!(opened.len(), 1 + usize::from(opened.contains_key("get")));

    // After a rotation, re-wrapping N stale objects: one unwrapKey each, one key check,
    // and one canary unwrapKey proving the new version's public key.
    let v2 = vault.create_key("orders", 2048);
    vault.reset_calls();
    let rewrapper = Envelope::builder()
        .open_with(lazily(&url, quick_options(&[&vault])))
        .build()
        .expect("envelope");
    let mut moved = Vec::new();
    for object in &objects {
        let rewrapped = block_on(rewrapper.rewrap(object, RewrapTarget::CurrentVersion))
            .expect("rewrap")
            .expect("stale, so moved");
        moved.push(rewrapped.apply_to(object).expect("apply"));
    }
    assert_eq!(
        vault.authenticated_calls(),
        counts(&[("get", 1), ("unwrapKey", OBJECTS + 1)])
    );
    for (i, object) in moved.iter().enumerate() {
        assert_eq!(slot_kid(object), vault.kid("orders", &v2));
        assert_eq!(slot_kid(&objects[i]), vault.kid("orders", &v1));
        assert_eq!(
            block_on(rewrapper.open(object, b""))
                .expect("open")
                .plaintext(),
            format!("record {i}").as_bytes()
        );
    }

    // Objects already under the current version are recognised from their headers: no
    // call at all (the key check is still fresh).
    vault.reset_calls();
    for object in &moved {
        assert!(
            block_on(rewrapper.rewrap(object, RewrapTarget::CurrentVersion))
                .expect("rewrap")
                .is_none()
        );
    }
    assert_eq!(vault.authenticated_calls(), counts(&[]));
}

#[test]
fn refusals_the_kids_decide_make_no_remote_call() {
    let vault = KeyVaultDouble::start("contoso");
    let elsewhere = KeyVaultDouble::start("fabrikam");
    vault.create_key("orders", 2048);
    elsewhere.create_key("orders", 2048);
    let options = || quick_options(&[&vault, &elsewhere]);
    let writer = Envelope::builder()
        .seal_with(lazily(&vault.key_url("orders"), options()))
        .build()
        .expect("envelope");
    let object = block_on(writer.seal(b"ledger", b"")).expect("seal");
    vault.reset_calls();

    let opener = Envelope::builder()
        .open_with(lazily(&vault.key_url("orders"), options()))
        .build()
        .expect("envelope");
    // Another vault: refused by the same-vault rule, neither vault asked.
    let other_vault = lazily(&elsewhere.key_url("orders"), options());
    let refused = block_on(opener.rewrap(&object, RewrapTarget::Key(other_vault)));
    assert!(
        matches!(refused, Err(Error::PolicyRefused(_))),
        "{refused:?}"
    );
    // Down to a software key: refused, no call.
    let software = support::temp_keyring(cmk_envelope::crypto::Provider::default());
    let refused = block_on(opener.rewrap(&object, RewrapTarget::Key(software.key.clone())));
    assert!(
        matches!(refused, Err(Error::PolicyRefused(_))),
        "{refused:?}"
    );

    assert_eq!(vault.all_calls(), BTreeMap::new());
    assert_eq!(elsewhere.all_calls(), BTreeMap::new());
}

#[test]
fn a_rewrap_to_another_key_in_the_vault_proves_its_public_key_once() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let billing_version = vault.create_key("billing", 2048);
    let writer = Envelope::builder()
        .seal_with(lazily(&vault.key_url("orders"), quick_options(&[&vault])))
        .build()
        .expect("envelope");
    let objects: Vec<Vec<u8>> = (0..OBJECTS)
        .map(|_| block_on(writer.seal(b"ledger", b"")).expect("seal"))
        .collect();
    vault.reset_calls();
    let billing = lazily(&vault.key_url("billing"), quick_options(&[&vault]));
    for object in &objects {
        let moved = block_on(writer.rewrap(object, RewrapTarget::Key(Arc::clone(&billing))))
            .expect("rewrap")
            .expect("moved");
        assert_eq!(moved.to_kid(), vault.kid("billing", &billing_version));
    }
    // Each object's own unwrapKey, one get of billing, one canary on billing.
    assert_eq!(
        vault.authenticated_calls(),
        counts(&[("get", 1), ("unwrapKey", OBJECTS + 1)])
    );
}

#[test]
fn a_shared_budget_keeps_two_keys_under_the_vaults_rate() {
    const PER_KEY: usize = 15;
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    vault.create_key("billing", 2048);
    let seal_all = |name: &str| {
        let writer = Envelope::builder()
            .seal_with(lazily(&vault.key_url(name), quick_options(&[&vault])))
            .build()
            .expect("envelope");
        (0..PER_KEY)
            .map(|_| block_on(writer.seal(b"ledger", b"")).expect("seal"))
            .collect::<Vec<_>>()
    };
    let objects: Vec<Vec<u8>> = [seal_all("orders"), seal_all("billing")].concat();

    // The vault takes 10 requests a second; the two wrappers share a budget of 8.
    vault.limit_rate(10);
    vault.reset_calls();
    let limit =
        cmk_envelope::wrap::KeyOpsLimit::per_second(std::num::NonZeroU32::new(8).expect("8"));
    let opener = Arc::new(
        Envelope::builder()
            .open_with(lazily(
                &vault.key_url("orders"),
                quick_options(&[&vault]).max_key_ops(limit.clone()),
            ))
            .open_with(lazily(
                &vault.key_url("billing"),
                quick_options(&[&vault]).max_key_ops(limit),
            ))
            .lazy_rewrap(false)
            .build()
            .expect("envelope"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tasks: Vec<_> = objects
            .into_iter()
            .map(|object| {
                let opener = Arc::clone(&opener);
                tokio::spawn(async move { opener.open(&object, b"").await.map(|_| ()) })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("open");
        }
    });
    assert_eq!(vault.calls("throttled"), 0, "{:?}", vault.all_calls());
    assert_eq!(vault.calls("unwrapKey"), 2 * PER_KEY);
}

#[test]
fn a_429_pauses_every_wrapper_sharing_the_budget() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let writer = Envelope::builder()
        .seal_with(lazily(&vault.key_url("orders"), quick_options(&[&vault])))
        .build()
        .expect("envelope");
    let object = block_on(writer.seal(b"ledger", b"")).expect("seal");
    // No rate, only the shared pause; this test holds a clone, as a second wrapper would.
    let budget = cmk_envelope::wrap::KeyOpsLimit::unlimited();
    let reader = Envelope::builder()
        .open_with(lazily(
            &vault.key_url("orders"),
            quick_options(&[&vault]).max_key_ops(budget.clone()),
        ))
        .lazy_rewrap(false)
        .build()
        .expect("envelope");
    assert!(budget.reserve_at(std::time::Instant::now()).is_zero());
    vault.clear_log();
    vault.throttle_next(1);
    let opening = std::thread::spawn(move || {
        block_on(reader.open(&object, b""))
            .map(|o| o.plaintext().to_vec())
            .expect("open after the pause")
    });
    // As soon as the vault has answered 429 (Retry-After: 1), everyone sharing the budget
    // waits for the pause.
    while !vault.log().iter().any(|line| line.ends_with(" 429")) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The client takes the pause once it has read the answer: a moment after the vault
    // logged it, and long before the pause (1 s) ends and the open completes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut paused = false;
    while !paused && !opening.is_finished() && std::time::Instant::now() < deadline {
        paused = !budget.reserve_at(std::time::Instant::now()).is_zero();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(paused, "the 429 paused the budget this test shares");
    assert_eq!(opening.join().expect("thread"), b"ledger");
}

#[test]
fn callers_waiting_on_a_failing_key_check_share_its_failure() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let key = lazily(&vault.key_url("orders"), quick_options(&[&vault]));
    vault.fail_next(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let results: Vec<_> = runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let key = Arc::clone(&key);
                tokio::spawn(async move { key.current_kid().await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        results
    });
    for result in &results {
        assert!(
            matches!(result, Err(error @ Error::Unavailable { .. }) if error.is_transient()),
            "{result:?}"
        );
    }
    // One check (its tries share one request id), not one per caller.
    assert_eq!(vault.calls("get"), 1, "{:?}", vault.all_calls());
}

#[test]
fn a_transient_outage_at_a_refresh_keeps_sealing_under_the_version_checked_before() {
    use std::time::Duration;
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    // Long enough that the failed check's retries (under a second) stay within the grace.
    let refresh = Duration::from_secs(1);
    let writer = Envelope::builder()
        .seal_with(lazily(
            &vault.key_url("orders"),
            quick_options(&[&vault]).refresh_interval(refresh),
        ))
        .build()
        .expect("envelope");
    block_on(writer.seal(b"before", b"")).expect("seal");
    std::thread::sleep(refresh);

    // Down at the refresh: one failed check, then the version checked before wraps on.
    vault.set_down(true);
    vault.reset_calls();
    for i in 0..20 {
        let sealed = block_on(writer.seal(format!("during {i}").as_bytes(), b""))
            .expect("sealed through the outage");
        assert!(slot_kid(&sealed).starts_with(&vault.key_url("orders")));
    }
    assert_eq!(vault.calls("get"), 1, "{:?}", vault.all_calls());

    // Twice the refresh interval after the last good check, sealing stops.
    std::thread::sleep(refresh);
    let error = block_on(writer.seal(b"too late", b"")).expect_err("stale too long");
    assert!(error.is_transient(), "{error}");

    // Back up: the next check succeeds.
    vault.set_down(false);
    block_on(writer.seal(b"after", b"")).expect("seal");

    // A revocation is not transient: it stops sealing at the next check, without grace.
    std::thread::sleep(refresh);
    vault.set_access(keyvault_double::Access::RevokedRbac);
    let error = block_on(writer.seal(b"revoked", b"")).expect_err("revoked");
    assert!(matches!(error, Error::AccessDenied { .. }), "{error}");
}

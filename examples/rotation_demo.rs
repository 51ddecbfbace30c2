//! The main job on the embedded default, no cloud: a temporary software keyring, a key,
//! an object sealed under it, a rotation, the old object opened and lazily re-wrapped.
//!
//! Run: `cargo run --release --example rotation_demo`

use std::sync::Arc;

use cmk_envelope::inspect::inspect;
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let keyring = Keyring::create(dir.path().join("keyring"))?;

    let v1 = keyring.create_key("orders")?;
    println!("1. created key 'orders' (RSA-2048), current version: {v1}");

    let key = Arc::new(keyring.key("orders")?);
    let envelope = Envelope::builder()
        .seal_with(Arc::clone(&key) as Arc<dyn KeyWrapper>)
        .build()?;
    let plaintext = b"order 1042: 3 x widget, ship to Lisbon";
    let aad = b"tenant=42;table=orders";
    let sealed = envelope.seal(plaintext, aad).await?;
    let info = inspect(&sealed)?;
    println!(
        "2. sealed {} bytes -> {} bytes (header {} bytes), slot kid: {}",
        plaintext.len(),
        sealed.len(),
        info.header_len,
        info.slots[0].kid
    );

    let v2 = keyring.rotate_key("orders")?;
    println!("3. rotated 'orders': new current version {v2}; {v1} is kept for old data");

    let opened = envelope.open(&sealed, aad).await?;
    println!(
        "4. opened the old object under {}: {:?}",
        opened.info().kid(),
        String::from_utf8_lossy(opened.plaintext())
    );
    let rewrapped = opened
        .info()
        .rewrapped()
        .ok_or("the object should be stale after a rotation")?;
    println!(
        "5. it is stale: lazy re-wrap {} -> {} (one local RSA wrap, no second unwrap)",
        rewrapped.from_kid(),
        rewrapped.to_kid()
    );

    let updated = rewrapped.apply_to(&sealed)?;
    let body_unchanged =
        updated[rewrapped.header().len()..] == sealed[rewrapped.old_header_len()..];
    println!(
        "6. stored the new header: {} bytes; body unchanged: {body_unchanged}",
        updated.len()
    );

    let again = envelope.open(&updated, aad).await?;
    println!(
        "7. re-opened under {}: stale = {}, plaintext matches = {}",
        again.info().kid(),
        again.info().is_stale(),
        again.plaintext() == plaintext
    );

    let new = envelope.seal(b"a new order", aad).await?;
    println!(
        "8. new data is sealed under {}",
        inspect(&new)?.slots[0].kid
    );

    let tampered = {
        let mut t = updated.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        t
    };
    match envelope.open(&tampered, aad).await {
        Err(e) => println!("9. a flipped bit is refused: {e}"),
        Ok(_) => return Err("tampering went unnoticed".into()),
    }
    let listing = &keyring.list()?[0];
    println!(
        "10. keyring still holds {} versions of '{}'; nothing was deleted",
        listing.versions.len(),
        listing.name
    );
    if !body_unchanged || again.info().is_stale() || again.plaintext() != plaintext {
        return Err("the rotation story did not hold".into());
    }
    Ok(())
}

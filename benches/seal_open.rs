//! Seal and open through the software keyring beside the raw primitives, in one run.
//!
//! `cargo bench --bench seal_open` then `python3 benches/ratios.py` prints each result as a
//! ratio to the raw primitive measured in the same run (absolute times on a shared machine
//! mean little).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256,
};
use cmk_envelope::crypto::Provider;
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: [(usize, &str); 4] = [
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
    (16 << 20, "16MiB"),
];

struct Setup {
    _dir: tempfile::TempDir,
    envelope: Envelope,
    private_pkcs8: Vec<u8>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("keyring");
    let kid = keyring.create_key("bench").expect("key");
    let version = kid.version().expect("version");
    let pem =
        std::fs::read_to_string(dir.path().join(format!("bench/{version}.pem"))).expect("pem");
    let (_, doc) = pkcs8::SecretDocument::from_pem(&pem).expect("pem decode");
    let envelope = Envelope::builder()
        .seal_with(Arc::new(keyring.key("bench").expect("load")) as Arc<dyn KeyWrapper>)
        .provider(Provider::aws_lc())
        .build()
        .expect("envelope");
    Setup {
        _dir: dir,
        envelope,
        private_pkcs8: doc.as_bytes().to_vec(),
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let aad = b"bench";

    // Raw RSA-OAEP-256 wrap and unwrap of 32 bytes with the same key.
    let private = PrivateDecryptingKey::from_pkcs8(&s.private_pkcs8).expect("key");
    let public = OaepPublicEncryptingKey::new(private.public_key()).expect("public");
    let private = OaepPrivateDecryptingKey::new(private).expect("private");
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[9; 32], &mut wrapped, None)
        .expect("wrap");
    let mut rsa = c.benchmark_group("rsa_oaep_raw");
    rsa.bench_function("wrap", |b| {
        let mut out = vec![0u8; public.ciphertext_size()];
        b.iter(|| {
            public
                .encrypt(&OAEP_SHA256_MGF1SHA256, black_box(&[9; 32]), &mut out, None)
                .map(|o| o.len())
        })
    });
    rsa.bench_function("unwrap", |b| {
        let mut out = vec![0u8; private.min_output_size()];
        b.iter(|| {
            private
                .decrypt(&OAEP_SHA256_MGF1SHA256, black_box(&wrapped), &mut out, None)
                .map(|o| o.len())
        })
    });
    rsa.finish();

    for (size, name) in SIZES {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(4));
        }
        let plaintext = vec![0x42u8; size];

        // Raw AES-256-GCM over the whole buffer, in place: the floor for the data path.
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
        group.bench_function(BenchmarkId::new("aes_gcm_raw", name), |b| {
            let mut buf = plaintext.clone();
            b.iter(|| {
                key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::from(&aad[..]),
                    black_box(&mut buf),
                )
                .map(|t| t.as_ref()[0])
            })
        });

        group.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter(|| {
                runtime
                    .block_on(s.envelope.seal(black_box(&plaintext), aad))
                    .map(|v| v.len())
            })
        });

        let sealed = runtime
            .block_on(s.envelope.seal(&plaintext, aad))
            .expect("seal");
        group.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| {
                runtime
                    .block_on(s.envelope.open(black_box(&sealed), aad))
                    .map(|o| o.plaintext().len())
            })
        });

        // The same with one reused output buffer, as a service handling many objects would.
        group.bench_function(BenchmarkId::new("seal_into", name), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                runtime
                    .block_on(s.envelope.seal_into(black_box(&plaintext), aad, &mut out))
                    .map(|()| out.len())
            })
        });
        group.bench_function(BenchmarkId::new("open_into", name), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                runtime
                    .block_on(s.envelope.open_into(black_box(&sealed), aad, &mut out))
                    .map(|_| out.len())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

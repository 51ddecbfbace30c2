//! Wycheproof vectors for AES-256-GCM and RSA-OAEP (SHA-1, SHA-256), run against every
//! provider through the same internal interface the data path uses.

use wycheproof::TestResult;

use super::Provider;
use crate::format::WrapAlgorithm;

#[test]
fn aes_256_gcm() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm)
        .unwrap_or_else(|e| panic!("{e}"));
    for provider in Provider::all() {
        let mut ran = 0;
        for group in set
            .test_groups
            .iter()
            .filter(|g| g.key_size == 256 && g.nonce_size == 96 && g.tag_size == 128)
        {
            for test in &group.tests {
                let key: [u8; 32] = test
                    .key
                    .as_slice()
                    .try_into()
                    .unwrap_or_else(|_| panic!("key"));
                let nonce: [u8; 12] = test
                    .nonce
                    .as_slice()
                    .try_into()
                    .unwrap_or_else(|_| panic!("nonce"));
                let cipher = provider
                    .ops()
                    .aes256_gcm(&key)
                    .unwrap_or_else(|_| panic!("key"));
                let tag: [u8; 16] = test
                    .tag
                    .as_slice()
                    .try_into()
                    .unwrap_or_else(|_| panic!("tag"));
                let mut buf = vec![0xaau8; test.ct.len()];
                let opened = cipher.open_to(&nonce, &test.aad, &test.ct, &tag, &mut buf);
                // The same wire bytes three bytes into a buffer, opened to its start (the
                // in-place data path's move towards the front).
                let mut within = vec![0xaau8; 3];
                within.extend_from_slice(&test.ct);
                within.extend_from_slice(&tag);
                let opened_within = cipher.open_within(&nonce, &test.aad, &mut within, 3);
                match test.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert!(opened.is_ok(), "{} tc {}", provider.name(), test.tc_id);
                        assert_eq!(buf, test.pt.as_slice(), "tc {}", test.tc_id);
                        assert_eq!(opened_within, Ok(test.pt.len()), "tc {}", test.tc_id);
                        assert_eq!(&within[..test.pt.len()], test.pt.as_slice());
                        let mut sealed = vec![0u8; test.pt.len()];
                        let got = cipher
                            .seal_to(&nonce, &test.aad, &test.pt, &mut sealed)
                            .unwrap_or_else(|_| panic!("seal"));
                        assert_eq!(
                            (sealed.as_slice(), &got[..]),
                            (test.ct.as_slice(), test.tag.as_slice())
                        );
                        let mut in_place = test.pt.to_vec();
                        let got = cipher
                            .seal_in_place(&nonce, &test.aad, &mut in_place)
                            .unwrap_or_else(|_| panic!("seal in place"));
                        assert_eq!(
                            (in_place.as_slice(), &got[..]),
                            (test.ct.as_slice(), test.tag.as_slice())
                        );
                    }
                    TestResult::Invalid => {
                        assert!(opened.is_err(), "{} tc {}", provider.name(), test.tc_id);
                        assert!(buf.iter().all(|b| *b == 0), "output not zeroed");
                        assert!(opened_within.is_err(), "tc {}", test.tc_id);
                        assert!(within.iter().all(|b| *b == 0), "buffer not zeroed");
                    }
                }
                ran += 1;
            }
        }
        assert!(
            ran > 50,
            "{} ran only {ran} AES-GCM vectors",
            provider.name()
        );
    }
}

fn rsa_oaep(name: wycheproof::rsa_oaep::TestName, algorithm: WrapAlgorithm) {
    let set = wycheproof::rsa_oaep::TestSet::load(name).unwrap_or_else(|e| panic!("{e}"));
    for provider in Provider::all() {
        let (mut ran, mut skipped_labels) = (0, 0);
        for group in &set.test_groups {
            let key = provider
                .ops()
                .rsa_private_from_pkcs8(&group.pkcs8)
                .unwrap_or_else(|_| panic!("{} rejected the group key", provider.name()));
            for test in &group.tests {
                // The format uses the empty label only; labelled vectors test an API we do
                // not have.
                if !test.label.is_empty() {
                    skipped_labels += 1;
                    continue;
                }
                let got = key.decrypt_oaep(algorithm, &test.ct);
                match test.result {
                    TestResult::Valid => {
                        let got =
                            got.unwrap_or_else(|_| panic!("{} tc {}", provider.name(), test.tc_id));
                        assert_eq!(got.as_slice(), test.pt.as_slice(), "tc {}", test.tc_id);
                    }
                    TestResult::Invalid => {
                        assert!(
                            got.is_err(),
                            "{} accepted tc {}",
                            provider.name(),
                            test.tc_id
                        );
                    }
                    TestResult::Acceptable => {}
                }
                ran += 1;
            }
            // And our own wraps open with the same key.
            let public = key.public_key().unwrap_or_else(|_| panic!("public"));
            let wrapped = public
                .encrypt_oaep(algorithm, &[7u8; 32])
                .unwrap_or_else(|_| panic!("wrap"));
            let back = key
                .decrypt_oaep(algorithm, &wrapped)
                .unwrap_or_else(|_| panic!("unwrap"));
            assert_eq!(back.as_slice(), &[7u8; 32]);
        }
        assert!(
            ran > 20,
            "{} ran only {ran} vectors ({skipped_labels} labelled skipped)",
            provider.name()
        );
    }
}

#[test]
fn rsa_oaep_2048_sha256_mgf1_sha256() {
    rsa_oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha256Mgf1Sha256,
        WrapAlgorithm::RsaOaepSha256,
    );
}

#[test]
fn rsa_oaep_2048_sha1_mgf1_sha1() {
    rsa_oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha1Mgf1Sha1,
        WrapAlgorithm::RsaOaepSha1,
    );
}

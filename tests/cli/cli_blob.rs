//! `cmke` with blob URLs where files go (Azurite over HTTPS, `--oauth basic`; the token
//! comes from `--azure-credential client-secret` against the loopback Entra ID double):
//! encrypt into a blob, inspect it, decrypt it whole and by range, the stale note after a
//! rotation, and the refusals (an existing blob, a SAS token, a container without a name).
#![cfg(all(
    feature = "cli",
    feature = "azure-blob",
    feature = "insecure-loopback-vault",
    feature = "aws-lc"
))]

use crate::support;

use std::path::PathBuf;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;
use support::azurite::{azurite, TENANT};
use support::keyvault_double::entra::EntraDouble;

const CLIENT: &str = "6e4d2a1f-9b3c-4d7e-8f10-1b2c3d4e5f60";
const SECRET: &str = "blob-objects~s3cr3t";

struct Site {
    dir: tempfile::TempDir,
    entra: EntraDouble,
    container: String,
}

impl Site {
    async fn new(container: &str) -> Self {
        let container = azurite().new_container(container).await;
        let entra = EntraDouble::start(TENANT, &support::azurite::token());
        entra.register_secret(CLIENT, SECRET);
        let site = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            entra,
            container,
        };
        site.cmke()
            .args(["key", "create", "orders"])
            .assert()
            .success();
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn blob(&self, name: &str) -> String {
        format!("{}/{name}", self.container)
    }

    fn cmke(&self) -> assert_cmd::Command {
        let mut cmd = support::cmke(self.dir.path(), &self.path("keyring"));
        self.entra
            .log_in_with_secret(&mut cmd, TENANT, CLIENT, SECRET);
        cmd.timeout(std::time::Duration::from_secs(120));
        cmd
    }
}

#[tokio::test]
async fn encrypt_into_a_blob_then_inspect_and_decrypt_it_whole_and_by_range() {
    let site = Site::new("cli-objects").await;
    let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let plain = site.path("data.bin");
    std::fs::write(&plain, &plaintext).expect("write");
    let url = site.blob("reports/2026/data.bin");
    site.cmke()
        .args(["encrypt", "--key", "orders", "--aad", "t=1", "-o", &url])
        .arg(&plain)
        .assert()
        .success();

    let out = site.cmke().args(["inspect", &url]).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(info.to_string().contains("local:orders/"), "{info}");

    let opened = site.path("opened.bin");
    site.cmke()
        .args(["decrypt", "--aad", "t=1", &url, "-o"])
        .arg(&opened)
        .assert()
        .success();
    assert_eq!(std::fs::read(&opened).expect("read"), plaintext);
    site.cmke()
        .args(["decrypt", "--aad", "t=1", "--range", "65535..65537", &url])
        .assert()
        .success()
        .stdout(predicates::ord::eq(plaintext[65535..65537].to_vec()));
    site.cmke()
        .args(["decrypt", "--aad", "t=2", &url])
        .assert()
        .code(2);

    // After a rotation, decrypting says the blob is stale and how to move it.
    site.cmke()
        .args(["key", "rotate", "orders"])
        .assert()
        .success();
    site.cmke()
        .args(["decrypt", "--aad", "t=1", "-o"])
        .arg(site.path("again.bin"))
        .arg(&url)
        .assert()
        .success()
        .stderr(contains("old key version").and(contains("cmke rewrap")));

    // An existing blob is never replaced.
    std::fs::write(site.path("other.bin"), b"other").expect("write");
    site.cmke()
        .args(["encrypt", "--key", "orders", "-o", &url])
        .arg(site.path("other.bin"))
        .assert()
        .failure()
        .stderr(contains("exists"));
    site.cmke()
        .args(["decrypt", "--aad", "t=1", "-o"])
        .arg(&opened)
        .arg(&url)
        .assert()
        .success();
    assert_eq!(std::fs::read(&opened).expect("read"), plaintext);
}

#[tokio::test]
async fn blob_urls_that_are_refused() {
    let site = Site::new("cli-refusals").await;
    site.cmke()
        .args([
            "decrypt",
            &format!("{}?sv=2024&sig=SECRETSIG", site.blob("x")),
        ])
        .assert()
        .failure()
        .stderr(
            contains("SAS")
                .or(contains("query"))
                .and(contains("SECRETSIG").not()),
        );
    site.cmke()
        .args(["decrypt", &site.container])
        .assert()
        .code(1)
        .stderr(contains("names a container"));
    site.cmke()
        .args(["decrypt", &site.blob("missing")])
        .assert()
        .code(1)
        .stderr(contains("not found"));
}

fn lines_with(stdout: &[u8], needle: &str) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|line| line.contains(needle))
        .map(|line| line.split(": ").next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_container_is_inventoried_rewrapped_by_shards_and_verified() {
    let site = Site::new("cli-bulk").await;
    let plain = site.path("p.txt");
    std::fs::write(&plain, b"one of many").expect("write");
    let names: Vec<String> = (0..12).map(|i| format!("bulk/day-{i}.cmke")).collect();
    for name in &names {
        site.cmke()
            .args(["encrypt", "--key", "orders", "-o", &site.blob(name)])
            .arg(&plain)
            .assert()
            .success();
    }
    // A blob that is not an envelope, and one outside the prefix.
    let sdk = azure_storage_blob::BlobContainerClient::new(
        site.container.parse().expect("url"),
        Some(support::azurite::StorageToken::new()),
        None,
    )
    .expect("client");
    sdk.blob_client("bulk/readme.txt")
        .upload(
            azure_core::http::RequestContent::from(b"plain text, not ours".to_vec()),
            None,
        )
        .await
        .expect("put");
    site.cmke()
        .args([
            "encrypt",
            "--key",
            "orders",
            "-o",
            &site.blob("other/x.cmke"),
        ])
        .arg(&plain)
        .assert()
        .success();
    let prefix = site.blob("bulk");

    let out = site
        .cmke()
        .args(["inventory", "--json", &prefix])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inventory: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(inventory["objects"], 12, "{inventory}");
    assert_eq!(
        inventory["not_cmke"][0]["path"],
        site.blob("bulk/readme.txt")
    );
    assert_eq!(inventory["stale"].as_array().map(Vec::len), Some(0));

    site.cmke()
        .args(["key", "rotate", "orders"])
        .assert()
        .success();
    let out = site
        .cmke()
        .args(["inventory", "--stale", &prefix])
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 12);

    // Three machines, one shard each: every blob re-wrapped exactly once.
    let mut rewrapped = Vec::new();
    for shard in ["0/3", "1/3", "2/3"] {
        let out = site
            .cmke()
            .args(["rewrap", "--jobs", "3", "--shard", shard, &prefix])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(lines_with(&out.stdout, "already current").is_empty());
        rewrapped.extend(lines_with(&out.stdout, "re-wrapped"));
    }
    rewrapped.sort();
    let mut expected: Vec<String> = names.iter().map(|n| site.blob(n)).collect();
    expected.sort();
    assert_eq!(rewrapped, expected);

    // Resumable: a second run finds everything current.
    let out = site.cmke().args(["rewrap", &prefix]).output().expect("run");
    assert!(out.status.success());
    assert_eq!(lines_with(&out.stdout, "already current").len(), 12);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 re-wrapped, 12 already current"));

    let out = site
        .cmke()
        .args(["verify", "--quiet", &prefix])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 verified"));

    site.cmke()
        .args(["rewrap", "--shard", "0/2"])
        .arg(site.path("p.txt"))
        .assert()
        .code(1)
        .stderr(contains("--shard"));
}

#[tokio::test]
async fn blobs_of_the_python_sdks_client_side_encryption_are_opened_inventoried_and_rewrapped() {
    use support::cse_python::{pattern, run_python};
    let site = Site::new("cli-cse").await;
    let keyring = site.path("keyring");
    let keyring = keyring.to_str().expect("utf-8");
    run_python(&[
        "write",
        &site.container,
        keyring,
        "orders",
        "RSA-OAEP",
        "py/a.bin:5000000",
    ]);
    let url = site.blob("py/a.bin");
    let out = site.cmke().args(["decrypt", &url]).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == pattern(5_000_000), "the Python SDK's bytes");
    site.cmke()
        .args(["decrypt", "--range", "4194300..4194310", &url])
        .assert()
        .success()
        .stdout(predicates::ord::eq(
            pattern(5_000_000)[4_194_300..4_194_310].to_vec(),
        ));

    let out = site.cmke().args(["inspect", &url]).output().expect("run");
    let info: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(info["format"], "azure-client-side-encryption", "{info}");
    assert_eq!(info["algorithm"], "RSA-OAEP", "{info}");

    let out = site
        .cmke()
        .args(["inventory", "--json", &site.blob("py")])
        .output()
        .expect("run");
    let inventory: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(inventory["objects"], 1, "{inventory}");
    assert_eq!(
        inventory["client_side_encryption"][0]["protocol"], "2.0",
        "{inventory}"
    );

    site.cmke()
        .args(["key", "rotate", "orders"])
        .assert()
        .success();
    site.cmke()
        .args(["rewrap", &site.blob("py")])
        .assert()
        .success()
        .stdout(contains("re-wrapped"));
    run_python(&[
        "read",
        &site.container,
        keyring,
        "orders",
        "py/a.bin:5000000",
    ]);
    site.cmke()
        .args(["verify", &site.blob("py")])
        .assert()
        .success()
        .stderr(contains("1 verified"));
}

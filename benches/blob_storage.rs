//! Blob Storage against Azurite on loopback (HTTPS, `--oauth basic`): what a re-wrap, a
//! ranged read, an upload and a download cost, counted at the HTTP transport, and the
//! throughput of encrypted transfers as a ratio to the same SDK moving the same bytes
//! unencrypted in the same run. Not a criterion bench: the figures are counts and ratios.
//!
//! `cargo bench --bench blob_storage --features azure-blob` (Azurite from the test
//! command's `target/azurite`, or `AZURITE_BLOB`). `BLOB_BENCH_MIB` sets the throughput
//! size (default 256); the peak-RSS run streams `BLOB_BENCH_RSS_MIB` (default 1024) through
//! a child process of its own.

#[path = "../tests/support/azurite.rs"]
#[allow(dead_code)]
mod azurite;
#[path = "../tests/support/slow_key.rs"]
#[allow(dead_code)]
mod slow_key;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport};
use azure_storage_blob::BlobContainerClientOptions;
use cmk_envelope::blob::{BlobContainer, UploadOptions};
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper, RewrapTarget};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Counts requests, request body bytes and response `Content-Length` bytes.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn HttpClient>,
    requests: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

#[async_trait::async_trait]
impl HttpClient for Counting {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if let azure_core::http::Body::Bytes(bytes) = request.body() {
            self.sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        }
        let response = self.inner.execute_request(request).await?;
        let len = response
            .headers()
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                "content-length",
            ))
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(0);
        self.received.fetch_add(len, Ordering::SeqCst);
        Ok(response)
    }
}

impl Counting {
    fn take(&self) -> (u64, u64, u64) {
        (
            self.requests.swap(0, Ordering::SeqCst),
            self.sent.swap(0, Ordering::SeqCst),
            self.received.swap(0, Ordering::SeqCst),
        )
    }
}

/// `len` bytes of a repeating pattern, generated as read: no buffer of the object's size.
struct Pattern {
    left: u64,
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        let chunk: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        buf.put_slice(&chunk);
        self.left -= n as u64;
        std::task::Poll::Ready(Ok(()))
    }
}

fn options(counting: &Arc<Counting>) -> BlobContainerClientOptions {
    let mut options = BlobContainerClientOptions::default();
    options.client_options.transport = Some(Transport::new(counting.clone()));
    options
}

async fn drain(mut reader: impl AsyncRead + Unpin) -> u64 {
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = reader.read(&mut sink).await.expect("read");
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--rss-child") {
        return rss_child(&args[at + 1], &args[at + 2]).await;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let site = azurite::azurite();
    let url = site.new_container("bench").await;
    let token = azurite::StorageToken::new();
    let counting = Arc::new(Counting {
        inner: azure_core::http::new_http_client(None),
        requests: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
    });
    let container = BlobContainer::new(&url, token.clone(), Some(options(&counting))).expect("c");
    let dir = tempfile::tempdir().expect("dir");
    let keyring = Keyring::create(dir.path()).expect("keyring");
    keyring.create_key("bench").expect("key");
    let key = slow_key::SlowKey::new(Arc::new(keyring.key("bench").expect("key")), Duration::ZERO);
    let envelope = Envelope::builder()
        .seal_with(key.clone() as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope");
    let segment = u64::from(cmk_envelope::format::limits::DEFAULT_SEGMENT_SIZE);

    println!("== re-wrap: requests and bytes sent per blob (target: header + <= 2 KiB, <= 4 requests + 1 unwrap)");
    for size_mib in [1u64, 256] {
        let name = format!("rewrap-{size_mib}");
        container
            .upload(
                &envelope,
                &name,
                Pattern {
                    left: size_mib << 20,
                },
                b"",
                UploadOptions::default(),
            )
            .await
            .expect("upload");
        let header_len = container.read_header(&name).await.expect("header").len() as u64;
        keyring.rotate_key("bench").expect("rotate");
        counting.take();
        let unwraps_before = key.calls.load(Ordering::SeqCst);
        let done = container
            .rewrap(&envelope, &name, RewrapTarget::CurrentVersion)
            .await
            .expect("rewrap")
            .expect("stale");
        let (requests, sent, received) = counting.take();
        let unwraps = key.calls.load(Ordering::SeqCst) - unwraps_before;
        println!(
            "{size_mib:>4} MiB blob: {requests} requests, {sent} bytes sent (header {header_len}, \
             over it {}), {received} bytes received, {unwraps} unwrap(s) (1 more confirms the new slot \
             locally), body re-sent {}",
            sent as i64 - header_len as i64,
            done.body_bytes_resent
        );
    }

    println!("== 4 KiB ranged read from the 256 MiB blob (target: header + <= 2 segments)");
    let middle = 128u64 << 20;
    counting.take();
    let opened = container
        .download_range(&envelope, "rewrap-256", b"", middle - 2048..middle + 2048)
        .await
        .expect("range");
    assert_eq!(opened.plaintext().len(), 4096);
    let (requests, _, received) = counting.take();
    let header_len = container.read_header("rewrap-256").await.expect("h").len() as u64;
    counting.take();
    println!(
        "{requests} requests, {received} bytes fetched; header {header_len} + 2 segments = {}",
        header_len + 2 * (segment + 16)
    );

    let size = mib("BLOB_BENCH_MIB", 256) << 20;
    println!("== throughput of {} MiB, ratio to the same SDK moving the same bytes unencrypted (target >= 0.8)", size >> 20);
    let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let sdk = azure_storage_blob::BlobContainerClient::new(
        url.parse().expect("url"),
        Some(token.clone()),
        None,
    )
    .expect("sdk");
    let mut up_ratio = Vec::new();
    let mut down_ratio = Vec::new();
    for round in 0..3 {
        let t = Instant::now();
        sdk.blob_client(&format!("plain-{round}"))
            .upload(azure_core::http::RequestContent::from(plain.clone()), None)
            .await
            .expect("sdk upload");
        let raw_up = t.elapsed();
        let t = Instant::now();
        container
            .upload(
                &envelope,
                &format!("sealed-{round}"),
                plain.as_slice(),
                b"",
                UploadOptions::default(),
            )
            .await
            .expect("upload");
        let ours_up = t.elapsed();
        let t = Instant::now();
        let bytes = sdk
            .blob_client(&format!("plain-{round}"))
            .download(None)
            .await
            .expect("sdk download")
            .body
            .collect()
            .await
            .expect("body");
        assert_eq!(bytes.len() as u64, size);
        let raw_down = t.elapsed();
        let t = Instant::now();
        let reader = container
            .download(&envelope, &format!("sealed-{round}"), b"")
            .await
            .expect("download");
        assert_eq!(drain(reader).await, size);
        let ours_down = t.elapsed();
        up_ratio.push(raw_up.as_secs_f64() / ours_up.as_secs_f64());
        down_ratio.push(raw_down.as_secs_f64() / ours_down.as_secs_f64());
        println!(
            "round {round}: upload sealed/plain {:.2} (plain {:.0} MiB/s), download {:.2} (plain {:.0} MiB/s)",
            up_ratio[round],
            (size >> 20) as f64 / raw_up.as_secs_f64(),
            down_ratio[round],
            (size >> 20) as f64 / raw_down.as_secs_f64(),
        );
    }
    up_ratio.sort_by(f64::total_cmp);
    down_ratio.sort_by(f64::total_cmp);
    println!(
        "median: upload {:.2}x, download {:.2}x",
        up_ratio[1], down_ratio[1]
    );
    drop(plain);

    let rss_mib = mib("BLOB_BENCH_RSS_MIB", 1024);
    println!(
        "== peak RSS streaming {rss_mib} MiB, each way in a process of its own (target <= 64 MiB)"
    );
    for way in ["up", "down"] {
        let out = std::process::Command::new(&args[0])
            .args(["--rss-child", way, &url])
            .env("BLOB_BENCH_RSS_MIB", rss_mib.to_string())
            .env("BLOB_BENCH_KEYRING", dir.path())
            .output()
            .expect("child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Uploads (`up`) or downloads (`down`, what `up` wrote) `BLOB_BENCH_RSS_MIB` of a
/// pattern; prints the process's peak RSS.
async fn rss_child(way: &str, url: &str) {
    let before = peak_rss_kib();
    let keyring =
        Keyring::open(std::env::var("BLOB_BENCH_KEYRING").expect("keyring")).expect("open");
    let envelope = Envelope::builder()
        .seal_with(Arc::new(keyring.key("bench").expect("key")))
        .build()
        .expect("envelope");
    let container = BlobContainer::new(url, azurite::StorageToken::new(), None).expect("container");
    let size = mib("BLOB_BENCH_RSS_MIB", 1024) << 20;
    if way == "up" {
        container
            .upload(
                &envelope,
                "rss",
                Pattern { left: size },
                b"",
                UploadOptions::default().overwrite(true),
            )
            .await
            .expect("upload");
    } else {
        let reader = container
            .download(&envelope, "rss", b"")
            .await
            .expect("download");
        assert_eq!(drain(reader).await, size);
    }
    println!(
        "{way}: peak RSS {} MiB (at start {} MiB) for {} MiB",
        peak_rss_kib() / 1024,
        before / 1024,
        size >> 20
    );
}

#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test under every feature set, the demo.
# Installs and starts whatever the tests need, so it runs on a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints the minutes and seconds since the start, to show where the time goes.
started=$SECONDS
step() {
    local t=$((SECONDS - started))
    printf '\n==> [%d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*"
}

step "the machine's /dev/null is the null device"
# cargo hands /dev/null to rustc as stdin when it probes the target; if a program replaced
# the device with a regular file, probes read stray text and every build fails obscurely.
if [ ! -c /dev/null ]; then
    echo "/dev/null is not a character device; recreating it" >&2
    rm -f /dev/null && mknod -m 666 /dev/null c 1 3 \
        || { echo "cannot recreate /dev/null (needs root)" >&2; exit 1; }
fi

step "toolchain components"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

step "system packages the tests need"
# SoftHSM2 for the PKCS#11 backend's tests (each test makes its own throw-away token).
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y --no-install-recommends "$@" \
        || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "$@"; }
}
if ! command -v softhsm2-util >/dev/null; then
    apt_install softhsm2
fi
softhsm2-util --version
# CMake and Go build AWS-LC's FIPS module (feature `fips`, part of --all-features).
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v go >/dev/null || missing+=(golang-go)
# OpenSSL's headers: the Azure SDK's client-certificate credential (feature `azure`) reads
# PKCS#12 and signs its assertion with OpenSSL.
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev pkg-config)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi
cmake --version | head -n 1
go version
# Azurite, the Azure Storage emulator, for the blob branch store's tests (feature
# azure-blob): the npm package, kept in target/azurite. The tests start it themselves, over
# HTTPS with a certificate they make, one per test process.
if [ ! -x target/azurite/node_modules/.bin/azurite-blob ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    npm install --prefix target/azurite --no-audit --no-fund --loglevel=error azurite@3.35.0
fi
node --version
target/azurite/node_modules/.bin/azurite-blob --version
# The official Python azure-storage-blob package, which writes client-side encryption v2
# blobs for the interoperability tests (tests/backends/blob_cse_python.rs), in a virtual
# environment of its own in target/pyenv.
if ! target/pyenv/bin/python -c 'import azure.storage.blob, cryptography' 2>/dev/null; then
    python3 -m venv --clear target/pyenv 2>/dev/null || { apt_install python3-venv; python3 -m venv --clear target/pyenv; }
    target/pyenv/bin/pip install --quiet --disable-pip-version-check \
        'azure-storage-blob==12.31.1' 'cryptography>=44'
fi
target/pyenv/bin/python -c 'import azure.storage.blob as b; print("azure-storage-blob", b.__version__)'

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --all-targets --all-features -- -D warnings

step "layers run one way: no file cycles in the library or cmke"
python3 .ci/file_cycles.py

step "cargo doc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "the README's first command: the rotation demo"
cargo run --quiet --example rotation_demo

step "a key service of one's own, checked by the published behaviour suite"
cargo run --quiet --example own_key_service --features test-support

step "cargo test --all-features: the FIPS build (feature fips), with every backend and cmke"
# --all-features includes `fips`: this run is the whole suite on AWS-LC's FIPS module (the
# rustcrypto provider is left out of FIPS builds). It must come before the default run:
# tests/format/fips_interop.rs opens, in the default build, what this run sealed.
cargo test --all-features

step "cargo test (both providers in one build, with the HSM: cross-provider and interop tests)"
# aws-lc (not the FIPS module), the default provider, with rustcrypto beside it: a superset
# of the default features, so a separate default-features run would only repeat it. The
# FIPS run above left its envelope for tests/format/fips_interop.rs: its absence is a failure.
CMKE_FIPS_EXCHANGE=required cargo test --features rustcrypto,pkcs11

step "cargo test (rustcrypto only)"
cargo test --no-default-features --features rustcrypto

step "supply chain: cargo deny"
bash .ci/deny.sh

step "bounded fuzz run of every target"
bash .ci/fuzz.sh

step "done"

#!/usr/bin/env bash
# Supply chain: licences, bans and sources (offline), and advisories when the RustSec
# database can be fetched. Installs cargo-deny when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
    bash .ci/install-tool.sh cargo-deny
fi
cargo deny check licenses bans sources

# The RUSTSEC-2023-0071 exception (deny.toml) is meant for feature `rustcrypto` only: prove
# that the default build does not contain `rsa` at all.
if cargo tree --edges normal --prefix none | grep -q '^rsa '; then
    echo "the default build depends on the rsa crate: the RUSTSEC-2023-0071 exception would cover it" >&2
    exit 1
fi

# The advisory database lives on GitHub. Where it cannot be reached, say so loudly rather
# than pass as if checked.
if output=$(cargo deny check advisories 2>&1); then
    echo "advisories: checked"
elif grep -q "failed to fetch advisory database" <<<"$output"; then
    printf '\n!!! ADVISORIES NOT CHECKED: the RustSec advisory database (github.com) cannot be fetched from here.\n!!! Run `cargo deny check advisories` where GitHub is reachable.\n\n' >&2
else
    echo "$output" >&2
    exit 1
fi

#!/usr/bin/env bash
# Supply chain: licences, bans, sources, and advisories. Advisories come from a fresh fetch
# of the RustSec database when it can be reached, else from the snapshot in
# ../shared/advisory-db (or CMKE_ADVISORY_DB), checked offline. Either way an advisory not
# ignored in deny.toml fails the run. Installs cargo-deny when missing.
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

# 1. A fresh database, where its host can be reached.
if output=$(cargo deny check advisories 2>&1); then
    echo "advisories: checked against a freshly fetched RustSec database"
    exit 0
elif ! grep -qi "fetch\|network\|resolve\|connect" <<<"$output"; then
    echo "$output" >&2
    exit 1
fi
echo "advisories: the RustSec database cannot be fetched from here; using the snapshot"

# 2. The snapshot, offline. cargo-deny reads a database as a git checkout under its
#    db-path, so the snapshot's files become one commit, dated as the snapshot says.
snapshot="${CMKE_ADVISORY_DB:-$(cd .. && pwd)/shared/advisory-db}"
if [ ! -d "$snapshot/crates" ]; then
    echo "!!! no advisory database: neither a fetch nor the snapshot at $snapshot" >&2
    exit 1
fi
snapshot_date=$(grep -oE '\(20[0-9]{2}-[0-9]{2}-[0-9]{2}\)' "$snapshot/SNAPSHOT.md" | tr -d '()' | head -n 1)
snapshot_commit=$(grep -oE '[0-9a-f]{40}' "$snapshot/SNAPSHOT.md" | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$work/dbs\"|" deny.toml >"$work/deny.toml"
# Offline, cargo metadata needs every package of the lock file on disk.
cargo fetch --locked --quiet
# The directory cargo-deny expects is named after the database URL: ask it.
expected=$(cargo deny --offline --config "$work/deny.toml" check advisories 2>&1 \
    | grep -oE "$work/dbs/[A-Za-z0-9._-]+" | head -n 1 || true)
if [ -z "$expected" ]; then
    echo "!!! cargo-deny did not say where it expects the advisory database" >&2
    exit 1
fi
mkdir -p "$(dirname "$expected")"
cp -r "$snapshot" "$expected"
chmod -R u+w "$expected"
(
    cd "$expected"
    git init -q
    git add -A
    GIT_AUTHOR_DATE="${snapshot_date}T00:00:00Z" GIT_COMMITTER_DATE="${snapshot_date}T00:00:00Z" \
        git -c user.name=snapshot -c user.email=snapshot@localhost commit -qm "RustSec snapshot $snapshot_commit"
)
cargo deny --offline --config "$work/deny.toml" check advisories
age_days=$(( ( $(date +%s) - $(date -d "$snapshot_date" +%s) ) / 86400 ))
echo "advisories: checked offline against the RustSec snapshot of $snapshot_date ($age_days days old, commit $snapshot_commit)"
# A snapshot older than a year says too little about today's advisories to pass on.
if [ "$age_days" -gt 365 ]; then
    echo "!!! the advisory snapshot is $age_days days old (more than 365): refresh shared/advisory-db" >&2
    exit 1
fi

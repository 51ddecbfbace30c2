"""The official Python azure-storage-blob SDK on the other side of the crate's client-side
encryption v2 support (tests/backends/blob_cse_python.rs runs it against Azurite).

    cse_python.py write CONTAINER_URL KEYRING_DIR KEY_NAME ALGORITHM NAME:SIZE...
    cse_python.py read  CONTAINER_URL KEYRING_DIR KEY_NAME NAME:SIZE...

`write` uploads, with encryption_version "2.0", blobs of the given sizes holding the test
pattern, under the key's current version (a key-encryption key whose kid is the crate's
`local:NAME/VERSION`, wrapping with ALGORITHM: RSA-OAEP or RSA-OAEP-256). `read` downloads
them with a resolver that knows every version of the key, checks every byte, and also
reads a range of each. The token comes from CMKE_TEST_TOKEN; HTTPS is checked against
SSL_CERT_FILE.
"""

import os
import sys
from datetime import datetime, timezone

from azure.core.credentials import AccessToken
from azure.storage.blob import ContainerClient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def pattern(size):
    return bytes((i * 7 + i // 65536) % 251 for i in range(size))


class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["CMKE_TEST_TOKEN"], int(datetime.now(timezone.utc).timestamp()) + 3600)


def oaep(algorithm):
    digest = {"RSA-OAEP": hashes.SHA1(), "RSA-OAEP-256": hashes.SHA256()}[algorithm]
    return padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)


class KeyringKey:
    """One version of a keyring key, as the SDK's key-encryption-key interface wants it."""

    def __init__(self, keyring, name, version, algorithm="RSA-OAEP-256"):
        with open(os.path.join(keyring, name, version + ".pem"), "rb") as f:
            self.private = serialization.load_pem_private_key(f.read(), password=None)
        self.kid = "local:%s/%s" % (name, version)
        self.algorithm = algorithm

    def wrap_key(self, key):
        return self.private.public_key().encrypt(key, oaep(self.algorithm))

    def unwrap_key(self, key, algorithm):
        return self.private.decrypt(key, oaep(algorithm))

    def get_key_wrap_algorithm(self):
        return self.algorithm

    def get_kid(self):
        return self.kid


def container(url):
    return ContainerClient.from_container_url(
        url, credential=Token(), connection_verify=os.environ["SSL_CERT_FILE"]
    )


def blobs(specs):
    for spec in specs:
        name, size = spec.rsplit(":", 1)
        yield name, int(size)


def main():
    mode, url, keyring, key_name = sys.argv[1:5]
    client = container(url)
    if mode == "write":
        algorithm = sys.argv[5]
        with open(os.path.join(keyring, key_name, "current")) as f:
            version = f.read().strip()
        kek = KeyringKey(keyring, key_name, version, algorithm)
        for name, size in blobs(sys.argv[6:]):
            blob = client.get_blob_client(name)
            blob.require_encryption = True
            blob.encryption_version = "2.0"
            blob.key_encryption_key = kek
            blob.upload_blob(pattern(size), overwrite=True)
        print("wrote", len(sys.argv[6:]), "blobs under", kek.kid)
    elif mode == "read":
        versions = {}
        for file in os.listdir(os.path.join(keyring, key_name)):
            if file.endswith(".pem"):
                key = KeyringKey(keyring, key_name, file[: -len(".pem")])
                versions[key.kid] = key
        for name, size in blobs(sys.argv[5:]):
            blob = client.get_blob_client(name)
            blob.require_encryption = True
            blob.key_resolver_function = versions.get
            data = blob.download_blob().readall()
            assert data == pattern(size), "%s: %d bytes, not the pattern" % (name, len(data))
            if size > 10:
                part = blob.download_blob(offset=size // 2, length=7).readall()
                assert part == pattern(size)[size // 2 : size // 2 + 7], name
        print("read", len(sys.argv[5:]), "blobs")
    else:
        raise SystemExit("mode: write or read")


if __name__ == "__main__":
    main()

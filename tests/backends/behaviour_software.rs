//! The backend behaviour suite against the software keyring, on every provider.

use crate::support;
use support::behaviour;

use std::sync::Arc;

use cmk_envelope::crypto::Provider;
use cmk_envelope::software::{Keyring, SoftwareWrapper};
use cmk_envelope::KeyWrapper;

struct SoftwareBackend {
    _dir: tempfile::TempDir,
    keyring: Keyring,
    key: Arc<SoftwareWrapper>,
}

#[cmk_envelope::async_trait]
impl behaviour::Backend for SoftwareBackend {
    fn wrapper(&self) -> Arc<dyn KeyWrapper> {
        self.key.clone()
    }
    async fn rotate(&self) {
        self.keyring.rotate_key("orders").expect("rotate");
    }
    async fn other_key(&self) -> Arc<dyn KeyWrapper> {
        self.keyring.create_key("billing").expect("create");
        Arc::new(self.keyring.key("billing").expect("key"))
    }
    /// A keyring key has no disabled state: a key file is there or not.
    async fn set_enabled(&self, _: bool) -> bool {
        false
    }
}

#[tokio::test]
async fn the_software_keyring_behaves() {
    for provider in Provider::all() {
        let t = support::temp_keyring(provider);
        let backend = SoftwareBackend {
            keyring: t.keyring,
            key: t.key.clone(),
            _dir: t.dir,
        };
        behaviour::run(&backend).await;
        behaviour::prefixed_slots_round_trip(t.key).await;
    }
}

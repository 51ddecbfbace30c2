//! A throw-away SoftHSM2 for tests: a token directory and `SOFTHSM2_CONF` in a temporary
//! directory, one fresh token per test.
//!
//! The test command (`.ci/test-all.sh`) installs Debian's `softhsm2` when it is missing;
//! these tests fail, rather than skip, without it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

/// The user PIN of every test token.
pub const USER_PIN: &str = "4711-user";
/// The security officer PIN of every test token.
pub const SO_PIN: &str = "0815-officer";
/// The environment variable the tests' configs read the PIN from.
pub const PIN_VAR: &str = "CMKE_TEST_PKCS11_PIN";

struct Hsm {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    pkcs11: Pkcs11,
}

static HSM: OnceLock<Hsm> = OnceLock::new();
/// Tokens are initialised one at a time: each takes the one free slot.
static INIT: Mutex<()> = Mutex::new(());

/// SoftHSM2's module: `SOFTHSM2_MODULE`, else where Debian puts it.
pub fn module() -> PathBuf {
    if let Some(path) = std::env::var_os("SOFTHSM2_MODULE") {
        return PathBuf::from(path);
    }
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect(
        "SoftHSM2 is not installed: run `bash .ci/test-all.sh` (it installs it) or \
         `apt-get install softhsm2`, or point SOFTHSM2_MODULE at libsofthsm2.so",
    )
}

fn hsm() -> &'static Hsm {
    HSM.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("conf");
        // Read by SoftHSM2 when the module is initialised, here and in child processes.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var(PIN_VAR, USER_PIN);
        let pkcs11 = Pkcs11::new(module()).expect("load SoftHSM2");
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("initialise SoftHSM2: {e}"),
        }
        Hsm {
            _dir: dir,
            conf,
            pkcs11,
        }
    })
}

/// The `SOFTHSM2_CONF` of the test HSM, for child processes.
pub fn conf() -> &'static Path {
    &hsm().conf
}

/// Initialises a new token labelled `label` with [`USER_PIN`]; returns the label.
pub fn new_token(label: &str) -> String {
    let hsm = hsm();
    let _one_at_a_time = INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let free = hsm
        .pkcs11
        .get_all_slots()
        .expect("slots")
        .into_iter()
        .find(|slot| {
            hsm.pkcs11
                .get_token_info(*slot)
                .map(|info| !info.token_initialized())
                .unwrap_or(false)
        })
        .expect("SoftHSM2 always has one free slot");
    let so_pin = AuthPin::from(SO_PIN);
    hsm.pkcs11
        .init_token(free, &so_pin, label)
        .expect("init token");
    let session = hsm.pkcs11.open_rw_session(free).expect("session");
    session
        .login(UserType::So, Some(&so_pin))
        .expect("SO login");
    session
        .init_pin(&AuthPin::from(USER_PIN))
        .expect("user PIN");
    session.logout().expect("logout");
    label.to_owned()
}

/// The process's SoftHSM2 context, for tests that act on the token directly.
pub fn pkcs11() -> &'static Pkcs11 {
    &hsm().pkcs11
}

/// The slot holding the token labelled `label`.
fn slot_of(label: &str) -> cryptoki::slot::Slot {
    let pkcs11 = &hsm().pkcs11;
    pkcs11
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|slot| {
            pkcs11
                .get_token_info(*slot)
                .is_ok_and(|info| info.label().trim_end() == label)
        })
        .expect("a token with that label")
}

/// Gives the token labelled `label` another user PIN.
pub fn change_user_pin(label: &str, new_pin: &str) {
    let session = hsm()
        .pkcs11
        .open_rw_session(slot_of(label))
        .expect("session");
    session
        .login(UserType::User, Some(&AuthPin::from(USER_PIN)))
        .expect("user login");
    session
        .set_pin(&AuthPin::from(USER_PIN), &AuthPin::from(new_pin))
        .expect("set PIN");
    session.logout().expect("logout");
}

/// Whether the token says a user login failed since the last good one
/// (`CKF_USER_PIN_COUNT_LOW`): what a token that locks after N failures counts.
pub fn failed_user_logins(label: &str) -> bool {
    hsm()
        .pkcs11
        .get_token_info(slot_of(label))
        .expect("token info")
        .user_pin_count_low()
}

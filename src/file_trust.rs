//! Files that decide which keys are used must belong to the user: a keyring, a key file, a
//! PIN file (and, in `cmke`, the config file and the PKCS#11 module) that someone else can
//! change lets that someone choose the keys, read the data or run code. As ssh does for
//! `~/.ssh`, such files are refused, with what is wrong and how to fix it.

use std::path::Path;

use crate::error::{Error, Result};

/// Checks that `path` (followed if a symlink) is owned by the user running this process or
/// by root, and is not writable by group or others. `what` names the file in the message
/// ("keyring directory", "PIN file", ...).
///
/// # Errors
/// [`Error::UntrustedFile`] saying which file, what is wrong and the command that fixes
/// it; [`Error::Io`] when the file cannot be examined.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let pin = dir.path().join("pin");
/// std::fs::write(&pin, "1234")?;
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o666))?;
/// assert!(cmk_envelope::check_file_trust(&pin, "PIN file").is_err());
/// std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600))?;
/// # }
/// cmk_envelope::check_file_trust(&pin, "PIN file")?;
/// # Ok(()) }
/// ```
pub fn check_file_trust(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io_at(path, e))?;
    check_metadata(path, &meta, what)
}

#[cfg(unix)]
pub(crate) fn check_metadata(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;

    let me = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    if owner != me && owner != 0 {
        return Err(Error::UntrustedFile {
            path: path.to_path_buf(),
            reason: format!(
                "this {what} is owned by uid {owner}, not by you (uid {me}) or root, so its \
                 owner can change it; use your own copy, or `chown {me} {}`",
                path.display()
            ),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::UntrustedFile {
            path: path.to_path_buf(),
            reason: format!(
                "this {what} is writable by {} (mode {mode:04o}), so they can change it; \
                 fix it with `chmod go-w {}`",
                match mode & 0o022 {
                    0o020 => "its group",
                    0o002 => "everyone",
                    _ => "its group and everyone",
                },
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_metadata(_: &Path, _: &std::fs::Metadata, _: &str) -> Result<()> {
    // No owner and mode bits to read here; Windows ACLs are left to the administrator.
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn with_mode(mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (dir, path)
    }

    #[test]
    fn group_or_world_writable_files_are_refused_with_the_fix() {
        for (mode, who) in [
            (0o620, "its group"),
            (0o602, "everyone"),
            (0o666, "its group and everyone"),
        ] {
            let (_dir, path) = with_mode(mode);
            let error = check_file_trust(&path, "PIN file").expect_err("refused");
            let text = error.to_string();
            assert!(
                text.contains(who) && text.contains("chmod go-w") && text.contains("PIN file"),
                "{text}"
            );
        }
        for mode in [0o600, 0o644, 0o755, 0o400] {
            let (_dir, path) = with_mode(mode);
            check_file_trust(&path, "PIN file").expect("accepted");
        }
    }

    #[test]
    fn files_of_another_user_are_refused_unless_root_owns_them() {
        let me = rustix::process::geteuid().as_raw();
        let (_dir, path) = with_mode(0o600);
        if me != 0 {
            // Only root can give a file away; as a normal user our own file must pass.
            check_file_trust(&path, "key file").expect("own file");
            return;
        }
        std::os::unix::fs::chown(&path, Some(4242), None).expect("chown");
        let text = check_file_trust(&path, "key file")
            .expect_err("refused")
            .to_string();
        assert!(
            text.contains("uid 4242") && text.contains("chown"),
            "{text}"
        );
        std::os::unix::fs::chown(&path, Some(0), None).expect("chown back");
        check_file_trust(&path, "key file").expect("root-owned");
    }
}

//! The names of temporary files: made by one function, recognized by one other.

/// What marks a temporary file of this crate and of `cmke`:
/// `.{target}{TEMP_MARKER}{pid}-{hex nanos}-{attempt}`.
pub const TEMP_MARKER: &str = ".cmke-tmp-";

/// The name of a temporary file for `target`, made by this process on try `attempt`
/// (0..100): `.{target}.cmke-tmp-{pid}-{hex nanos}-{attempt}`, the shape
/// [`parse_temp_name`] recognizes.
#[must_use]
pub fn temp_name(target: &str, attempt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        ".{target}{TEMP_MARKER}{}-{nanos:x}-{attempt}",
        std::process::id()
    )
}

/// Whether `name` has the exact shape of a temporary file of this crate or of `cmke`,
/// `.{target}.cmke-tmp-{pid}-{hex nanos}-{attempt}`: the target's name and the pid of the
/// process that made it. Only such a file, of a process that is gone, is ever removed as
/// a leftover.
///
/// ```
/// use cmk_envelope::trust::parse_temp_name;
/// assert_eq!(parse_temp_name(".current.cmke-tmp-42-1f-0"), Some(("current", 42)));
/// assert_eq!(parse_temp_name(".current.tmp-42"), None);
/// ```
#[must_use]
pub fn parse_temp_name(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix('.')?;
    let (target, tail) = rest.rsplit_once(TEMP_MARKER)?;
    let mut parts = tail.split('-');
    let pid = parts.next()?.parse::<u32>().ok()?;
    let nanos = parts.next()?;
    let attempt = parts.next()?;
    let well_formed = !target.is_empty()
        && !nanos.is_empty()
        && nanos.len() <= 8
        && nanos
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && attempt.parse::<u32>().is_ok_and(|n| n < 100)
        && parts.next().is_none();
    well_formed.then_some((target, pid))
}

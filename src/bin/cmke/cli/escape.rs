//! Text from files (kids, paths, error messages that quote them) is escaped before it
//! reaches a terminal or a log: a kid holding `ESC[2K\r` or a newline must not erase or
//! forge a line. JSON output is left to serde, which escapes exactly.

use std::borrow::Cow;
use std::fmt::Write;
use std::path::Path;

/// `text` with control characters, and the invisible characters that reorder or hide text
/// (bidirectional overrides, zero-width marks), written as `\n`, `\x1b`, `\u{202e}`; and
/// every URL in it without userinfo, query or fragment (a SAS `sig=`, a password).
pub fn text(text: &str) -> Cow<'_, str> {
    match cmk_envelope::redact::urls(text) {
        Cow::Borrowed(text) => controls(text),
        Cow::Owned(redacted) => Cow::Owned(controls(&redacted).into_owned()),
    }
}

fn controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_char(&mut out, c);
    }
    Cow::Owned(out)
}

/// A path for display: as [`text`], and bytes that are not UTF-8 as `\xNN`.
pub fn path(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
        || c == '\\'
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // A backslash is doubled so that an escape can be told from the same text typed.
        '\\' => out.push_str("\\\\"),
        c if needs_escape(c) && u32::from(c) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_made_visible() {
        assert_eq!(text("local:orders/abc"), "local:orders/abc");
        assert_eq!(
            text("x\u{1b}[2K\r\u{1b}[32mall objects current\n"),
            "x\\x1b[2K\\r\\x1b[32mall objects current\\n"
        );
        assert_eq!(text("a\u{202e}b\u{7f}c\u{9b}"), "a\\u{202e}b\\x7fc\\x9b");
        assert_eq!(text("C:\\dir"), "C:\\\\dir");
        assert_eq!(text("ünïcode ok"), "ünïcode ok");
    }

    #[cfg(unix)]
    #[test]
    fn paths_show_bytes_that_are_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"d/\xff\x1b.cmke"));
        assert_eq!(path(p), "d/\\xff\\x1b.cmke");
    }
}

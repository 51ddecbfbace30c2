//! Credentials that ride in URLs (a SAS token's `sig=` in the query, `user:password@` in the
//! authority) never reach a message: every URL in a text is shown without its userinfo,
//! query and fragment.

use std::borrow::Cow;

const HIDDEN: &str = "***";

/// `text` with every `scheme://` URL in it shown without userinfo, query or fragment:
/// `https://user:pw@host/c?sv=1&sig=abc` becomes `https://***@host/c?***`.
///
/// ```
/// use cmk_envelope::redact::urls;
/// assert_eq!(
///     urls("cannot read https://me:pw@acct.blob.core.windows.net/c?sig=abc: denied"),
///     "cannot read https://***@acct.blob.core.windows.net/c?***: denied"
/// );
/// assert_eq!(urls("no URL here"), "no URL here");
/// ```
#[must_use]
pub fn urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, from_scheme_end) = rest.split_at(at);
        out.push_str(before);
        let after = from_scheme_end.get(3..).unwrap_or_default();
        let url_len = after
            .find(|c: char| c.is_whitespace() || "\"'<>`".contains(c))
            .unwrap_or(after.len());
        let (url, tail) = after.split_at(url_len);
        out.push_str("://");
        push_redacted(&mut out, url);
        rest = tail;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The part of a URL after `://`, without its credentials.
fn push_redacted(out: &mut String, url: &str) {
    let authority_len = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_len);
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(HIDDEN);
            out.push_str(authority.get(at..).unwrap_or_default());
        }
        None => out.push_str(authority),
    }
    // A message may end a URL with `:` or `.` before going on; keep those.
    let trailing = path.len() - path.trim_end_matches([':', '.', ',', ';', ')']).len();
    let (path, punctuation) = path.split_at(path.len() - trailing);
    match path.find(['?', '#']) {
        Some(cut) => {
            out.push_str(path.get(..cut).unwrap_or_default());
            out.push_str(path.get(cut..=cut).unwrap_or_default());
            out.push_str(HIDDEN);
        }
        None => out.push_str(path),
    }
    out.push_str(punctuation);
}

#[cfg(test)]
mod tests {
    use super::urls;

    #[test]
    fn sas_tokens_and_passwords_never_show() {
        for (given, shown) in [
            (
                "https://acct.blob.core.windows.net/branches?sv=2024&sig=SECRET",
                "https://acct.blob.core.windows.net/branches?***",
            ),
            (
                "https://user:SECRET@vault.example/keys/k",
                "https://***@vault.example/keys/k",
            ),
            ("x https://h/p#SECRET y", "x https://h/p#*** y"),
            (
                "a https://h/p?SECRET: b, https://u:SECRET@h2 c",
                "a https://h/p?***: b, https://***@h2 c",
            ),
            ("plain text", "plain text"),
            ("https://h/p.", "https://h/p."),
        ] {
            assert_eq!(urls(given), shown);
            assert!(!urls(given).contains("SECRET"));
        }
    }
}

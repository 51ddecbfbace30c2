//! Reading the Azure SDK's errors, shared by every part that talks to Azure (the Key Vault
//! backend, the blob branch store): a leaf, so that neither imports the other.

/// What failed, and each cause under it, without the retry policy's own words ("retry
/// policy expired…"), which would hide what failed each try.
pub(crate) fn with_causes(error: &azure_core::Error) -> String {
    const RETRY_POLICY_WORDS: [&str; 2] = ["retry policy expired", "will not be retried"];
    let mut text = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !RETRY_POLICY_WORDS.iter().any(|w| said.contains(w)) && !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

//! Sizes on the command line and in cmke.toml (`--max-memory 256MiB`).

/// The default memory budget: 256 MiB for all jobs together.
pub const DEFAULT_MAX_MEMORY: u64 = 256 << 20;

/// `256MiB`, `1GiB`, `512M`, `64K`, or a number of bytes.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a size such as 256MiB, 1GiB or 512M"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use K, M, G or T)"
            ))
        }
    };
    let bytes = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("{text:?}: at least 1MiB"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_their_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2097152"), Ok(2 << 20));
        assert!(parse_size("12").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }
}

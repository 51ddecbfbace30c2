//! `--shard I/N`: a stable split of a listing by name hash, so that N machines (a
//! Kubernetes indexed Job, an Azure Batch task array) share one container with no
//! coordinator: every name falls in exactly one shard, the same one on every machine and
//! every run.

/// Shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether `name` is this shard's: FNV-1a (64 bits) of its bytes, modulo the count. The
    /// hash is fixed here, not the standard library's, which may change between releases.
    #[cfg_attr(not(feature = "azure-blob"), allow(dead_code))]
    pub fn holds(&self, name: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

/// Parses `I/N` (0 ≤ I < N).
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let (index, count) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected I/N, e.g. 0/4 (I counts from 0)"))?;
    let index: u32 = index
        .parse()
        .map_err(|_| format!("{index:?} is not a shard index"))?;
    let count: u32 = count
        .parse()
        .map_err(|_| format!("{count:?} is not a shard count"))?;
    if count == 0 || index >= count {
        return Err(format!(
            "{text}: the index counts from 0 and is below the count (0/{count} … {}/{count})",
            count.saturating_sub(1)
        ));
    }
    Ok(Shard { index, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_exactly_one_shard_and_the_split_is_even() {
        let names: Vec<String> = (0..10_000).map(|i| format!("logs/{i}.cmke")).collect();
        let shards: Vec<Shard> = (0..7).map(|index| Shard { index, count: 7 }).collect();
        let mut sizes = [0usize; 7];
        for name in &names {
            let holders: Vec<_> = shards.iter().filter(|s| s.holds(name)).collect();
            assert_eq!(holders.len(), 1, "{name}");
            sizes[holders[0].index as usize] += 1;
        }
        for size in sizes {
            assert!((1_200..1_700).contains(&size), "{sizes:?}");
        }
        // Stable: the same answer as any other build of cmke.
        assert!(Shard { index: 0, count: 1 }.holds("anything"));
        assert_eq!(
            (0..4)
                .find(|&index| Shard { index, count: 4 }.holds("a"))
                .expect("one"),
            (0xaf63_dc4c_8601_ec8c_u64 % 4) as u32
        );
    }

    #[test]
    fn shards_are_parsed_and_checked() {
        assert_eq!(parse_shard("2/5"), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "1/0", "x/2", "1", "-1/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}

//! Memory tiers (each with its CPU share) and the sizes people write for them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A memory size from the tier table, and the CPU share that comes with it (**contract**,
/// docs/architecture.md, "The two sandboxes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub memory_mb: u64,
    /// Thousandths of a vCPU.
    pub millicpu: u64,
}

pub const TIERS: [Tier; 7] = [
    Tier { memory_mb: 128, millicpu: 70 },
    Tier { memory_mb: 256, millicpu: 140 },
    Tier { memory_mb: 512, millicpu: 280 },
    Tier { memory_mb: 1024, millicpu: 560 },
    Tier { memory_mb: 2048, millicpu: 1120 },
    Tier { memory_mb: 3072, millicpu: 1680 },
    Tier { memory_mb: 4096, millicpu: 2240 },
];

impl Tier {
    /// The tier for a size in MiB, or the error naming the tiers.
    pub fn for_mb(mb: u64) -> Result<Self> {
        TIERS.iter().copied().find(|t| t.memory_mb == mb).ok_or(Error::NotATier { mb })
    }

    /// Parses `128`, `128M`, `128MB`, `128Mi`, `128MiB`, `1G`, `1GiB` (bare numbers are MiB).
    pub fn parse(s: &str) -> Result<Self> {
        let mb = parse_size_mb(s).ok_or_else(|| Error::BadMemory(s.to_string()))?;
        Self::for_mb(mb)
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_mb << 20
    }
}

/// Parses a size with an optional K/M/G suffix into MiB (bare numbers are MiB). Sizes that
/// are not a whole number of MiB are rejected.
pub fn parse_size_mb(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mb = match unit {
        "" | "m" => n,
        "g" => n.checked_mul(1024)?,
        "k" if n.is_multiple_of(1024) => n / 1024,
        _ => return None,
    };
    Some(mb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_in_every_spelling() {
        for s in ["128", "128M", "128m", "128MB", "128Mi", "128MiB", "131072K"] {
            assert_eq!(Tier::parse(s).unwrap().memory_mb, 128, "{s}");
        }
        assert_eq!(Tier::parse("1G").unwrap().millicpu, 560);
        assert_eq!(Tier::parse("4GiB").unwrap().millicpu, 2240);
    }

    #[test]
    fn bad_memory_names_the_tiers() {
        let e = Tier::parse("100M").unwrap_err().to_string();
        assert!(e.contains("not a tier") && e.contains("128, 256"), "{e}");
        let e = Tier::parse("12Q").unwrap_err().to_string();
        assert!(e.contains("'12Q' is not a size"), "{e}");
        assert!(Tier::parse("").is_err());
        assert!(Tier::parse("M").is_err());
    }
}

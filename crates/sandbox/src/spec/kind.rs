//! Which sandbox runs a program: v1 (namespaces, cgroups, a seccomp denylist) or v2 (the
//! same walls and the Sentry), and how the kind is written everywhere.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which sandbox runs the program. Written `v1`/`v2` everywhere (command lines, the
/// platform's registry and API); read with [`std::str::FromStr`], which also takes the old
/// names `container`/`sentry` and whose error names the value and the choices. v2 is the
/// default of every command line and of a deploy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// Namespaces, cgroups and a seccomp denylist: the full Linux syscall interface.
    #[cfg_attr(feature = "clap", value(alias = "container"))]
    V1,
    /// The same walls plus the Sentry, a user-space kernel that implements a documented
    /// selection of syscalls.
    #[cfg_attr(feature = "clap", value(alias = "sentry"))]
    #[default]
    V2,
}

impl std::str::FromStr for SandboxKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "v1" | "container" => Ok(Self::V1),
            "v2" | "sentry" => Ok(Self::V2),
            _ => Err(Error::Invalid(format!("sandbox '{s}' does not exist: use v1 or v2"))),
        }
    }
}

impl SandboxKind {
    /// The name it is written with: `v1` or `v2`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl std::fmt::Display for SandboxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Through [`std::str::FromStr`]: a stored or sent kind is read as a command line's is, and a
/// bad one is refused with the same message.
impl<'de> Deserialize<'de> for SandboxKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the platform stores and sends: `"v1"`/`"v2"`, the old names read, a bad one
    /// refused with the value and the choices.
    #[test]
    fn sandbox_kinds_keep_their_names() {
        for (k, name) in [(SandboxKind::V1, "v1"), (SandboxKind::V2, "v2")] {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<SandboxKind>(&format!("\"{name}\"")).unwrap(), k);
            assert_eq!((k.to_string(), name.parse::<SandboxKind>().unwrap()), (name.to_string(), k));
        }
        assert_eq!(serde_json::from_str::<SandboxKind>("\"sentry\"").unwrap(), SandboxKind::V2);
        assert_eq!("container".parse::<SandboxKind>().unwrap(), SandboxKind::V1);
        let e = serde_json::from_str::<SandboxKind>("\"v3\"").unwrap_err().to_string();
        assert!(e.contains("sandbox 'v3' does not exist: use v1 or v2"), "{e}");
    }
}

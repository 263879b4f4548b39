//! What a user deploys: a function's configuration, its defaults and limits, and the checks
//! that turn bad input into errors naming the fix.

use crate::error::{Error, Result};
use fnbox_sandbox::net::Network;
use fnbox_sandbox::spec::{SandboxKind, Tier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const NAME_MAX: usize = 34;
pub const TIMEOUT_MIN_S: u64 = 10;
pub const TIMEOUT_MAX_S: u64 = 3600;
pub const MAX_SCALE_LIMIT: u32 = 50;
pub const CONCURRENCY_LIMIT: u32 = 1000;
pub const QUEUE_LIMIT: u32 = 10_000;
/// Request and response payload limit (Scaleway's and Lambda's).
pub const PAYLOAD_MAX: usize = 6 << 20;
/// Largest header block (request line to blank line, as the instance receives it) the gateway
/// forwards: above, 431, and the instance never sees the request. The wrappers take exactly
/// this much (`MAX_HEAD` in `runtimes/wrapper.*`), so no request the gateway sends can make
/// them drop a connection.
pub const HEADER_MAX: usize = 64 << 10;

/// A function's runtime. Written `python3`/`node`/`binary` everywhere (command lines, the
/// registry, the API); read with [`std::str::FromStr`], which also takes `python`/`nodejs`
/// and whose error names the value and the choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Runtime {
    #[cfg_attr(feature = "clap", value(alias = "python"))]
    Python3,
    #[cfg_attr(feature = "clap", value(alias = "nodejs"))]
    Node,
    Binary,
}

impl std::str::FromStr for Runtime {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "python3" | "python" => Ok(Runtime::Python3),
            "node" | "nodejs" => Ok(Runtime::Node),
            "binary" => Ok(Runtime::Binary),
            _ => Err(Error::Invalid(format!("runtime '{s}' is not known: use python3, node or binary"))),
        }
    }
}

/// Through [`std::str::FromStr`]: a runtime sent or stored is read as a command line's is, and
/// a bad one is refused with the same message.
impl TryFrom<String> for Runtime {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl Runtime {
    pub fn as_str(&self) -> &'static str {
        match self {
            Runtime::Python3 => "python3",
            Runtime::Node => "node",
            Runtime::Binary => "binary",
        }
    }

    pub fn default_handler(&self) -> &'static str {
        match self {
            Runtime::Python3 | Runtime::Node => "handler.handle",
            Runtime::Binary => "main",
        }
    }
}

/// A function's configuration as stored in the registry. `secrets` never leaves the server:
/// see [`FunctionView`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub runtime: Runtime,
    pub handler: String,
    pub memory_mb: u64,
    pub sandbox: SandboxKind,
    pub min_scale: u32,
    pub max_scale: u32,
    pub timeout_s: u64,
    pub concurrency: u32,
    pub max_queue: u32,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub private: bool,
    /// Digest of the code in the code store.
    pub code: String,
    /// Outbound network: egress (the default of a deploy, as on Scaleway) or none. A
    /// function stored before networks existed has none: an upgrade widens nothing, and its
    /// next deploy gets the default (README, "Network").
    #[serde(default)]
    pub network: Network,
}

/// Deploys reach the internet unless made with `--network none`.
fn default_network() -> Network {
    Network::Egress
}

/// A deploy request: every field but the runtime and the code is optional; an unknown field
/// (a typo such as `max_sacle`) is refused, not ignored, and so is a value outside a closed
/// set (runtime, sandbox, network), with the message its type's `FromStr` gives.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub runtime: Runtime,
    pub code: String,
    pub handler: Option<String>,
    pub memory_mb: Option<u64>,
    /// `v2` (default) or `v1`.
    pub sandbox: Option<SandboxKind>,
    pub min_scale: Option<u32>,
    pub max_scale: Option<u32>,
    pub timeout_s: Option<u64>,
    pub concurrency: Option<u32>,
    pub max_queue: Option<u32>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub private: bool,
    /// `egress` (default) or `none`.
    #[serde(default)]
    pub network: Option<Network>,
}

impl DeployRequest {
    /// A request for `runtime` and the code with this digest, every other field unset.
    pub fn new(runtime: Runtime, code: String) -> Self {
        Self {
            runtime,
            code,
            handler: None,
            memory_mb: None,
            sandbox: None,
            min_scale: None,
            max_scale: None,
            timeout_s: None,
            concurrency: None,
            max_queue: None,
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            private: false,
            network: None,
        }
    }

    /// Applies the defaults and checks every limit.
    pub fn into_config(self) -> Result<FunctionConfig> {
        let runtime = self.runtime;
        let network = self.network.unwrap_or_else(default_network);
        let sandbox = self.sandbox.unwrap_or(SandboxKind::V2);
        let c = FunctionConfig {
            handler: self.handler.unwrap_or_else(|| runtime.default_handler().to_string()),
            runtime,
            memory_mb: self.memory_mb.unwrap_or(256),
            sandbox,
            min_scale: self.min_scale.unwrap_or(0),
            max_scale: self.max_scale.unwrap_or(20),
            timeout_s: self.timeout_s.unwrap_or(300),
            concurrency: self.concurrency.unwrap_or(1),
            max_queue: self.max_queue.unwrap_or(100),
            env: self.env,
            secrets: self.secrets,
            private: self.private,
            code: self.code,
            network,
        };
        c.validate()?;
        Ok(c)
    }
}

impl FunctionConfig {
    pub fn validate(&self) -> Result<()> {
        // The sandbox crate's errors are the server's (500) by default; here they are the user's.
        let invalid = |e: fnbox_sandbox::Error| Error::Invalid(e.to_string());
        Tier::for_mb(self.memory_mb).map_err(invalid)?;
        if !(TIMEOUT_MIN_S..=TIMEOUT_MAX_S).contains(&self.timeout_s) {
            return Err(Error::Invalid(format!(
                "timeout {} s is out of range: use {TIMEOUT_MIN_S} to {TIMEOUT_MAX_S} seconds",
                self.timeout_s
            )));
        }
        if self.max_scale == 0 || self.max_scale > MAX_SCALE_LIMIT {
            return Err(Error::Invalid(format!(
                "max-scale {} is out of range: use 1 to {MAX_SCALE_LIMIT} instances",
                self.max_scale
            )));
        }
        if self.min_scale > self.max_scale {
            return Err(Error::Invalid(format!(
                "min-scale {} is above max-scale {}: lower min-scale or raise max-scale",
                self.min_scale, self.max_scale
            )));
        }
        if self.concurrency == 0 || self.concurrency > CONCURRENCY_LIMIT {
            return Err(Error::Invalid(format!(
                "concurrency {} is out of range: use 1 to {CONCURRENCY_LIMIT} requests per instance",
                self.concurrency
            )));
        }
        if self.max_queue == 0 || self.max_queue > QUEUE_LIMIT {
            return Err(Error::Invalid(format!(
                "max-queue {} is out of range: use 1 to {QUEUE_LIMIT} waiting requests",
                self.max_queue
            )));
        }
        check_handler(self.runtime, &self.handler)?;
        for (key, value) in self.env.iter().chain(self.secrets.iter()) {
            check_env(key, value)?;
        }
        if let Some(k) = self.env.keys().find(|k| self.secrets.contains_key(*k)) {
            return Err(Error::Invalid(format!("'{k}' is given both as --env and as --secret: keep one of them")));
        }
        if self.code.len() != 64 || !self.code.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!("code '{}' is not a code digest: upload the code first", self.code)));
        }
        Ok(())
    }
}

/// Names: 1 to 34 characters among `a-z`, `0-9` and `-`.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > NAME_MAX
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Error::Invalid(format!(
            "function name '{name}' is not valid: use 1 to {NAME_MAX} characters among a-z, 0-9 and '-'"
        )));
    }
    Ok(())
}

/// The sandboxes' one rule for environment entries (names `[A-Za-z_][A-Za-z0-9_.-]*`, values
/// byte-exact without NUL), and `FNBOX_*` kept for fnbox.
fn check_env(k: &str, v: &str) -> Result<()> {
    fnbox_sandbox::spec::check_env(k, v).map_err(|e| Error::Invalid(e.to_string()))?;
    if k.starts_with("FNBOX_") {
        return Err(Error::Invalid(format!("environment variable '{k}' is reserved: FNBOX_* names are set by fnbox")));
    }
    Ok(())
}

/// `module.function` (the module may be a relative path: `src/handler.handle`) for Python and
/// Node; a relative path to an executable for `binary`.
fn check_handler(runtime: Runtime, handler: &str) -> Result<()> {
    let bad_path =
        |p: &str| p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    let ok = match runtime {
        Runtime::Binary => !bad_path(handler),
        Runtime::Python3 | Runtime::Node => match handler.rsplit_once('.') {
            Some((module, func)) => {
                !bad_path(module)
                    && !func.is_empty()
                    && func.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
            }
            None => false,
        },
    };
    if ok {
        return Ok(());
    }
    Err(Error::Invalid(match runtime {
        Runtime::Binary => format!(
            "handler '{handler}' is not valid for the binary runtime: give the executable's path inside the code directory, such as 'main' or 'bin/server'"
        ),
        _ => format!(
            "handler '{handler}' is not valid: use MODULE.FUNCTION, such as 'handler.handle' or 'src/handler.handle'"
        ),
    }))
}

/// What secret values are shown as.
pub const REDACTED: &str = "********";

/// A function as the API shows it: secret values redacted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FunctionView {
    pub name: String,
    pub version: u64,
    #[serde(flatten)]
    pub config: FunctionConfig,
    pub url: String,
    pub updated_at: u64,
    /// Instances running now.
    pub instances: usize,
}

/// A stored function.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub version: u64,
    pub config: FunctionConfig,
    pub updated_at: u64,
}

impl Function {
    pub fn view(&self, instances: usize) -> FunctionView {
        let mut config = self.config.clone();
        config.secrets.values_mut().for_each(|v| *v = REDACTED.to_string());
        FunctionView {
            name: self.name.clone(),
            version: self.version,
            config,
            url: format!("/fn/{}/", self.name),
            updated_at: self.updated_at,
            instances,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> DeployRequest {
        DeployRequest::new(Runtime::Python3, "a".repeat(64))
    }

    #[test]
    fn names() {
        assert!(check_name("hello-2").is_ok());
        assert!(check_name(&"a".repeat(34)).is_ok());
        for bad in ["", "Hello", "a_b", "a.b", "../x", &"a".repeat(35)] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("a-z, 0-9 and '-'"), "{e}");
        }
    }

    #[test]
    fn defaults_and_limits() {
        let c = req().into_config().unwrap();
        assert_eq!((c.handler.as_str(), c.memory_mb, c.min_scale, c.concurrency), ("handler.handle", 256, 0, 1));
        let e = DeployRequest { memory_mb: Some(100), ..req() }.into_config().unwrap_err();
        assert!(e.status() == 400 && e.to_string().contains("not a tier"), "{e}");
        let e = serde_json::from_str::<DeployRequest>(r#"{"runtime": "node", "code": "", "max_sacle": 3}"#);
        assert!(e.unwrap_err().to_string().contains("unknown field `max_sacle`"));
        for t in [9, 3601] {
            let e = DeployRequest { timeout_s: Some(t), ..req() }.into_config().unwrap_err().to_string();
            assert!(e.contains("10 to 3600"), "{e}");
        }
        let e = DeployRequest { max_scale: Some(51), ..req() }.into_config().unwrap_err().to_string();
        assert!(e.contains("1 to 50"), "{e}");
        let e = DeployRequest { min_scale: Some(3), max_scale: Some(2), ..req() }.into_config().unwrap_err();
        assert!(e.to_string().contains("above max-scale"), "{e}");
    }

    /// The API reads the closed sets as their types, with their own messages (naming the value
    /// and the choices), and takes the old and the long names a command line takes.
    #[test]
    fn deploy_requests_read_closed_sets_as_their_types() {
        let read = |fields: &str| serde_json::from_str::<DeployRequest>(&format!(r#"{{"code": "", {fields}}}"#));
        let e = |fields: &str| read(fields).unwrap_err().to_string();
        assert!(e(r#""runtime": "ruby""#).contains("runtime 'ruby' is not known: use python3, node or binary"));
        assert!(e(r#""runtime": "node", "sandbox": "v3""#).contains("sandbox 'v3' does not exist: use v1 or v2"));
        let net = e(r#""runtime": "node", "network": "all""#);
        assert!(net.contains("network 'all' does not exist: use egress or none"), "{net}");
        let r = read(r#""runtime": "python", "sandbox": "container", "network": "none""#).unwrap();
        assert_eq!((r.runtime, r.sandbox, r.network), (Runtime::Python3, Some(SandboxKind::V1), Some(Network::None)));
        let sent = serde_json::to_value(DeployRequest::new(Runtime::Node, String::new())).unwrap();
        assert_eq!((sent["runtime"].as_str(), sent["sandbox"].as_str()), (Some("node"), None));
    }

    #[test]
    fn deploys_default_to_egress_and_configs_stored_before_networks_to_none() {
        let c = req().into_config().unwrap();
        assert_eq!(c.network, Network::Egress);
        let mut stored = serde_json::to_value(&c).unwrap();
        stored.as_object_mut().unwrap().remove("network");
        let old: FunctionConfig = serde_json::from_value(stored).unwrap();
        assert_eq!(old.network, Network::None, "an upgrade must not give a stored function egress");
    }

    #[test]
    fn handlers_and_env() {
        for ok in ["handler.handle", "src/handler.handle", "a/b/c.main_2"] {
            assert!(check_handler(Runtime::Python3, ok).is_ok(), "{ok}");
        }
        for bad in ["handler", "../x.handle", "/abs.handle", "h.", "a//b.h", "h.han-dle"] {
            assert!(check_handler(Runtime::Node, bad).is_err(), "{bad}");
        }
        assert!(check_handler(Runtime::Binary, "bin/server").is_ok());
        assert!(check_handler(Runtime::Binary, "../server").is_err());
        let mut r = req();
        r.env.insert("FNBOX_X".into(), "1".into());
        assert!(r.into_config().unwrap_err().to_string().contains("reserved"));
        for bad in ["1A", "-x", ".x", "A B", "A=B", "", "é"] {
            let mut r = req();
            r.env.insert(bad.into(), "1".into());
            assert!(r.into_config().is_err(), "{bad:?}");
        }
        let mut r = req();
        r.secrets.insert("database-url".into(), "1".into());
        r.env.insert("_my.var-2".into(), "1".into());
        assert!(r.into_config().is_ok());
        let mut r = req();
        r.env.insert("1A".into(), "1".into());
        assert!(r.into_config().is_err());
        // Names as Scaleway's examples write them; values byte for byte, newlines included.
        let mut r = req();
        r.env.insert("my-var.x".into(), " spaced \n".into());
        r.secrets.insert("PEM".into(), "-----BEGIN-----\nabc\n".into());
        assert!(r.into_config().is_ok());
        let mut r = req();
        r.secrets.insert("TOKEN".into(), "s3cr3t\0x".into());
        let e = r.into_config().unwrap_err();
        assert!(e.status() == 400 && e.to_string().contains("'TOKEN'") && !e.to_string().contains("s3cr3t"), "{e}");
        let mut r = req();
        r.env.insert("A\nLD_PRELOAD".into(), "x".into());
        assert!(r.into_config().unwrap_err().to_string().contains("is not valid"));
    }
}

//! `fnbox deploy -f serverless.yml`: a Scaleway Serverless Framework project deployed as it
//! is: every function of `functions` (handler, memoryLimit, minScale/maxScale, timeout, env
//! and secret merged over `provider`'s, privacy) from the project's directory, and each
//! `events: - schedule: {rate, input}` as a CRON trigger (`sls-schedule-N`). Keys fnbox has
//! no use for are listed, with why, before anything is deployed. A second run deploys only
//! the functions whose configuration or code changed (the server answers `changed: false`),
//! and touches only the schedules that changed.
//!
//! The YAML read is the subset these files use: block mappings and sequences by indentation,
//! plain, single- and double-quoted scalars, `[a, b]` flow sequences, `#` comments.

use super::{print_json, Target};
use crate::error::{Error, Result};
use crate::function::{DeployRequest, Runtime};
use crate::triggers::{CreateTrigger, Source, TriggerView};
use bytes::Bytes;
use hyper::Method;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    /// A quoted scalar.
    Str(String),
    /// A plain (unquoted) scalar: a number or a boolean in JSON (a schedule's `input`).
    Plain(String),
    Null,
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) | Yaml::Plain(s) => Some(s),
            _ => None,
        }
    }

    fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(m) => m,
            _ => &[],
        }
    }
}

/// Strips a comment (a `#` at the start or after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || b[i - 1] == b' ') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn scalar(s: &str) -> Yaml {
    let s = s.trim();
    if s.is_empty() || s == "~" || s == "null" {
        return Yaml::Null;
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Yaml::List(inner.split(',').map(str::trim).filter(|x| !x.is_empty()).map(scalar).collect());
    }
    if s.len() >= 2 && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\''))) {
        return Yaml::Str(s[1..s.len() - 1].replace("\\\"", "\"").replace("''", "'"));
    }
    Yaml::Plain(s.to_string())
}

/// `key: value` (the key may be quoted), or `None` for a line that is not a mapping entry.
fn entry(s: &str) -> Option<(String, &str)> {
    let (k, v) = if s.starts_with('"') || s.starts_with('\'') {
        let q = &s[..1];
        let end = s[1..].find(q)? + 1;
        (&s[1..end], s[end + 1..].strip_prefix(':')?)
    } else {
        let i = s.find(": ").or_else(|| s.ends_with(':').then(|| s.len() - 1))?;
        (&s[..i], &s[i + 1..])
    };
    (!k.is_empty() && !k.contains(' ') || k.starts_with('$')).then(|| (k.to_string(), v))
}

/// Parses the lines at `indent` from `i` on.
fn block(lines: &[(usize, String)], i: &mut usize, indent: usize) -> Result<Yaml, String> {
    let Some((first, text)) = lines.get(*i) else { return Ok(Yaml::Null) };
    if *first != indent {
        return Ok(Yaml::Null);
    }
    if text == "-" || text.starts_with("- ") {
        let mut items = Vec::new();
        while let Some((ind, text)) = lines.get(*i) {
            if *ind != indent || !(text == "-" || text.starts_with("- ")) {
                break;
            }
            let rest = text[1..].trim_start();
            *i += 1;
            if rest.is_empty() {
                let next = lines.get(*i).map(|l| l.0).unwrap_or(0);
                items.push(if next > indent { block(lines, i, next)? } else { Yaml::Null });
            } else if entry(rest).is_some() {
                // A mapping starting on the dash's line: its entries sit two columns in.
                let inner = indent + (text.len() - rest.len());
                let mut sub = vec![(inner, rest.to_string())];
                while let Some((ind, t)) = lines.get(*i) {
                    if *ind < inner {
                        break;
                    }
                    sub.push((*ind, t.clone()));
                    *i += 1;
                }
                let mut j = 0;
                items.push(block(&sub, &mut j, inner)?);
            } else {
                items.push(scalar(rest));
            }
        }
        return Ok(Yaml::List(items));
    }
    let mut map = Vec::new();
    while let Some((ind, text)) = lines.get(*i) {
        if *ind < indent {
            break;
        }
        if *ind > indent {
            return Err(format!("line '{text}' is indented more than the entries before it"));
        }
        let (k, v) = entry(text).ok_or_else(|| format!("line '{text}' is not 'key: value'"))?;
        *i += 1;
        let value = if v.trim().is_empty() {
            match lines.get(*i) {
                Some((next, t)) if *next > indent || (*next == indent && t.starts_with("- ")) => {
                    let next = *next;
                    block(lines, i, next)?
                }
                _ => Yaml::Null,
            }
        } else {
            scalar(v)
        };
        map.push((k, value));
    }
    Ok(Yaml::Map(map))
}

pub fn parse(text: &str) -> Result<Yaml> {
    let lines: Vec<(usize, String)> = text
        .lines()
        .map(strip_comment)
        .filter(|l| !l.trim().is_empty() && l.trim() != "---")
        .map(|l| (l.len() - l.trim_start().len(), l.trim().to_string()))
        .collect();
    if let Some((_, l)) = lines.iter().find(|(_, l)| l.starts_with('|') || l.ends_with(": |") || l.ends_with(": >")) {
        return Err(Error::Invalid(format!("serverless.yml: block scalars are not read by fnbox ('{l}')")));
    }
    let mut i = 0;
    block(&lines, &mut i, 0).map_err(|e| Error::Invalid(format!("serverless.yml: {e}")))
}

/// What fnbox deploys from a project.
#[derive(Debug)]
pub struct Plan {
    pub functions: Vec<(String, DeployRequest, Vec<CreateTrigger>)>,
    /// `key: why it is ignored`.
    pub ignored: Vec<String>,
}

fn runtime_of(r: &str) -> Result<Runtime> {
    if r.starts_with("python3") {
        Ok(Runtime::Python3)
    } else if r.starts_with("node") {
        Ok(Runtime::Node)
    } else {
        Err(Error::Invalid(format!(
            "runtime: '{r}' is not served by fnbox: python3* and node* runtimes are (Go, PHP, Rust: build a binary and deploy it with --runtime binary)"
        )))
    }
}

/// `env` or `secret` entries. `${env:NAME}` (the Serverless Framework's variable) is the
/// deployer's environment variable NAME, which must be set; a secret that is only `${NAME}`
/// (serverless-scaleway-functions' own form) is NAME too, and left out with a warning when
/// NAME is not set, as the plugin does.
fn string_map(
    v: Option<&Yaml>,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in v.map(Yaml::entries).unwrap_or_default() {
        let v = v.str().ok_or_else(|| Error::Invalid(format!("{field}.{k}: give a string value")))?;
        let plugin_ref = field.ends_with("secret").then(|| v.strip_prefix("${")?.strip_suffix('}')).flatten();
        let value = match plugin_ref.filter(|n| !n.contains(':')) {
            Some(name) => match env(name) {
                Some(value) => value,
                None => {
                    warnings.push(format!(
                        "{field}.{k}: ${{{name}}} is not set in your environment: this secret is not created"
                    ));
                    continue;
                }
            },
            None => substitute(v, env).map_err(|e| Error::Invalid(format!("{field}.{k}: {e}")))?,
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// Replaces each `${env:NAME}` in `v`; other `${...}` variables are refused, naming them.
fn substitute(v: &str, env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').ok_or_else(|| format!("'{v}': a '${{' is not closed"))? + i;
        let var = &rest[i + 2..end];
        let name = var.strip_prefix("env:").map(str::trim).ok_or_else(|| {
            format!("'${{{var}}}': only ${{env:NAME}} variables are read by fnbox (no self:, opt:, file(), ...)")
        })?;
        out.push_str(&env(name).ok_or_else(|| format!("${{env:{name}}}: {name} is not set in your environment"))?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn number(v: Option<&Yaml>, field: &str) -> Result<Option<u64>> {
    match v {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::Str(s) | Yaml::Plain(s)) => s
            .trim_end_matches('s')
            .parse()
            .map(Some)
            .map_err(|_| Error::Invalid(format!("{field}: '{s}' is not a number"))),
        Some(_) => Err(Error::Invalid(format!("{field}: give a number"))),
    }
}

/// Reads a project's `serverless.yml` into what to deploy, variables from the process's environment.
pub fn plan(doc: &Yaml) -> Result<Plan> {
    plan_with_env(doc, &|name| std::env::var(name).ok())
}

/// [`plan`] with `env` giving the variables `${env:NAME}` and `${NAME}` name.
pub fn plan_with_env(doc: &Yaml, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan> {
    let mut ignored = Vec::new();
    let why_top = |k: &str| match k {
        "service" => Some("the project's name: fnbox has no namespaces, functions keep their own names"),
        "configValidationMode" | "useDotenv" | "frameworkVersion" => {
            Some("a setting of the Serverless Framework itself")
        }
        "plugins" => Some("fnbox plays the part of serverless-scaleway-functions"),
        "package" => Some("the whole project directory is deployed (package patterns are not applied)"),
        "custom" => Some("containers and other custom sections are not deployed by fnbox"),
        _ => None,
    };
    for (k, _) in doc.entries() {
        match (k.as_str(), why_top(k)) {
            ("provider" | "functions", _) => {}
            (_, Some(why)) => ignored.push(format!("{k}: {why}")),
            (_, None) => ignored.push(format!("{k}: not a key of Scaleway's serverless.yml that fnbox knows")),
        }
    }
    let provider = doc.get("provider").ok_or_else(|| Error::Invalid("provider: missing".into()))?;
    for (k, _) in provider.entries() {
        match k.as_str() {
            "name" | "runtime" | "env" | "secret" => {}
            "scwToken" | "scwProject" | "scwRegion" => {
                ignored.push(format!("provider.{k}: Scaleway credentials and region mean nothing to a local fnbox"))
            }
            _ => ignored.push(format!("provider.{k}: not used by fnbox")),
        }
    }
    if let Some(name) = provider.get("name").and_then(Yaml::str) {
        if name != "scaleway" {
            return Err(Error::Invalid(format!(
                "provider.name: '{name}': fnbox deploys Scaleway projects (name: scaleway)"
            )));
        }
    }
    let vars = env;
    let env = string_map(provider.get("env"), "provider.env", vars, &mut ignored)?;
    let secrets = string_map(provider.get("secret"), "provider.secret", vars, &mut ignored)?;
    let default_runtime = provider.get("runtime").and_then(Yaml::str);
    let functions = doc.get("functions").ok_or_else(|| {
        Error::Invalid("functions: missing (a project of containers only is not deployed by fnbox)".into())
    })?;
    let mut out = Vec::new();
    for (name, f) in functions.entries() {
        let field = |k: &str| format!("functions.{name}.{k}");
        crate::function::check_name(name).map_err(|e| Error::Invalid(format!("functions.{name}: {e}")))?;
        let runtime = f
            .get("runtime")
            .and_then(Yaml::str)
            .or(default_runtime)
            .ok_or_else(|| Error::Invalid(format!("{}: missing, and provider.runtime too", field("runtime"))))?;
        let mut req = DeployRequest::new(runtime_of(runtime)?, String::new());
        req.handler = f.get("handler").and_then(Yaml::str).map(str::to_string);
        req.memory_mb = number(f.get("memoryLimit"), &field("memoryLimit"))?;
        req.min_scale = number(f.get("minScale"), &field("minScale"))?.map(|v| v as u32);
        req.max_scale = number(f.get("maxScale"), &field("maxScale"))?.map(|v| v as u32);
        req.timeout_s = number(f.get("timeout"), &field("timeout"))?;
        req.env = env.clone();
        req.env.extend(string_map(f.get("env"), &field("env"), vars, &mut ignored)?);
        req.secrets = secrets.clone();
        req.secrets.extend(string_map(f.get("secret"), &field("secret"), vars, &mut ignored)?);
        req.private = match f.get("privacy").and_then(Yaml::str) {
            None | Some("public") => false,
            Some("private") => true,
            Some(p) => return Err(Error::Invalid(format!("{}: '{p}': use public or private", field("privacy")))),
        };
        for (k, _) in f.entries() {
            let known = [
                "handler",
                "runtime",
                "memoryLimit",
                "minScale",
                "maxScale",
                "timeout",
                "env",
                "secret",
                "privacy",
                "events",
            ];
            if !known.contains(&k.as_str()) {
                ignored.push(format!("{}: not used by fnbox", field(k)));
            }
        }
        let mut triggers = Vec::new();
        if let Some(Yaml::List(events)) = f.get("events") {
            for (i, e) in events.iter().enumerate() {
                let Some(s) = e.get("schedule") else {
                    ignored.push(format!("{}[{i}]: only schedule events are deployed", field("events")));
                    continue;
                };
                let rate = s
                    .get("rate")
                    .and_then(Yaml::str)
                    .ok_or_else(|| Error::Invalid(format!("{}[{i}].schedule.rate: missing", field("events"))))?;
                let data = match s.get("input") {
                    None | Some(Yaml::Null) => None,
                    Some(v) => Some(to_json(v)),
                };
                triggers.push(CreateTrigger {
                    name: Some(format!("sls-schedule-{i}")),
                    cron: Some(rate.to_string()),
                    data,
                    ..Default::default()
                });
            }
        }
        out.push((name.clone(), req, triggers));
    }
    Ok(Plan { functions: out, ignored })
}

fn to_json(v: &Yaml) -> serde_json::Value {
    match v {
        Yaml::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Yaml::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        Yaml::Str(s) => serde_json::Value::String(s.clone()),
        Yaml::Plain(s) => match s.as_str() {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            _ => s
                .parse::<i64>()
                .map(serde_json::Value::from)
                .or_else(|_| s.parse::<f64>().map(serde_json::Value::from))
                .unwrap_or_else(|_| serde_json::Value::String(s.clone())),
        },
        Yaml::Null => serde_json::Value::Null,
    }
}

pub async fn deploy_file(t: &Target, file: &Path) -> Result<i32> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Error::Invalid(format!("cannot read {}: {e}", file.display())))?;
    let plan = plan(&parse(&text)?)?;
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for why in &plan.ignored {
        eprintln!("fnbox: ignored: {why}");
    }
    let mut report = Vec::new();
    for (name, req, triggers) in plan.functions {
        let (v, _) = super::deploy_quiet(t, &name, dir, req, false, &super::progress::Status::new(false)).await?;
        let d: crate::api::Deployed = crate::api::read(&v, &format!("PUT /api/v1/functions/{name}"))?;
        let (changed, version) = (d.changed, d.function.version);
        let kept = sync_schedules(t, &name, &triggers).await?;
        if !t.json {
            println!(
                "{name}: {} (version {}), {} schedule(s){}",
                if changed { "deployed" } else { "unchanged" },
                version,
                triggers.len(),
                if kept.1 > 0 { format!(", {} changed", kept.1) } else { String::new() }
            );
        }
        report.push(serde_json::json!({ "function": name, "changed": changed, "version": version, "schedules_changed": kept.1 }));
    }
    if t.json {
        print_json(&serde_json::json!({ "functions": report, "ignored": plan.ignored }));
    }
    Ok(0)
}

/// Makes the function's `sls-schedule-*` triggers those of the file: (kept, changed).
async fn sync_schedules(t: &Target, function: &str, want: &[CreateTrigger]) -> Result<(usize, usize)> {
    let c = t.admin()?;
    let path = format!("/api/v1/functions/{function}/triggers");
    let have = c.call(Method::GET, &path, &[], Bytes::new()).await?.json()?;
    let have: Vec<TriggerView> = crate::api::read(&have, &format!("GET {path}"))?;
    let (mut kept, mut changed) = (0, 0);
    for h in &have {
        if !h.trigger.name.starts_with("sls-schedule-") {
            continue;
        }
        if want.iter().any(|w| same_schedule(h, w)) {
            kept += 1;
            continue;
        }
        c.call(Method::DELETE, &format!("/api/v1/triggers/{}", h.trigger.id), &[], Bytes::new()).await?.json()?;
        changed += 1;
    }
    for w in want {
        if have.iter().any(|h| same_schedule(h, w)) {
            continue;
        }
        let body = serde_json::to_vec(w).map_err(|e| Error::Internal(e.to_string()))?;
        let headers = [("content-type".to_string(), "application/json".to_string())];
        c.call(Method::POST, &path, &headers, body.into()).await?.json()?;
        changed += 1;
    }
    Ok((kept, changed))
}

/// Is the server's trigger `h` the file's schedule `w`: the same name, CRON expression and
/// data (none and `null` alike)?
fn same_schedule(h: &TriggerView, w: &CreateTrigger) -> bool {
    let (schedule, data) = match &h.trigger.source {
        Source::Cron { schedule, data } => (Some(schedule.as_str()), data.as_ref()),
        _ => (None, None),
    };
    let null = serde_json::Value::Null;
    w.name.as_deref() == Some(h.trigger.name.as_str())
        && w.cron.as_deref() == schedule
        && w.data.as_ref().unwrap_or(&null) == data.unwrap_or(&null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key fnbox reads, and some it ignores.
    const FIXTURE: &str = r#"
service: shop   # the project
configValidationMode: off
provider:
  name: scaleway
  runtime: python311
  scwRegion: fr-par
  env:
    LEVEL: "info"
  secret:
    DB_PASSWORD: 's3cret'
plugins:
  - serverless-scaleway-functions
package:
  patterns:
    - '!node_modules/**'
functions:
  orders:
    handler: handlers/orders.handle
    memoryLimit: 512
    minScale: 1
    maxScale: 4
    timeout: 60s
    privacy: private
    env:
      LEVEL: debug
    secret:
      API_KEY: "k#1"
    description: takes orders
    events:
      - schedule:
          rate: '*/5 * * * *'
          input:
            job: sweep
            dry: "yes"
      - schedule:
          rate: "0 3 * * mon"
  front:
    runtime: node20
    handler: handler.handle
"#;

    #[test]
    fn a_project_becomes_functions_and_schedules() {
        let p = plan(&parse(FIXTURE).unwrap()).unwrap();
        assert_eq!(p.functions.len(), 2);
        let (name, req, triggers) = &p.functions[0];
        assert_eq!(name, "orders");
        assert_eq!(req.runtime, Runtime::Python3);
        assert_eq!(req.handler.as_deref(), Some("handlers/orders.handle"));
        assert_eq!(
            (req.memory_mb, req.min_scale, req.max_scale, req.timeout_s),
            (Some(512), Some(1), Some(4), Some(60))
        );
        assert!(req.private);
        assert_eq!(req.env["LEVEL"], "debug");
        assert_eq!((req.secrets["DB_PASSWORD"].as_str(), req.secrets["API_KEY"].as_str()), ("s3cret", "k#1"));
        assert_eq!(triggers.len(), 2);
        assert_eq!(triggers[0].cron.as_deref(), Some("*/5 * * * *"));
        assert_eq!(triggers[0].data, Some(serde_json::json!({"job": "sweep", "dry": "yes"})));
        assert_eq!(triggers[1].name.as_deref(), Some("sls-schedule-1"));
        let (name, req, _) = &p.functions[1];
        assert_eq!((name.as_str(), req.runtime, req.env["LEVEL"].as_str()), ("front", Runtime::Node, "info"));
        for key in [
            "service:",
            "configValidationMode:",
            "plugins:",
            "package:",
            "provider.scwRegion:",
            "functions.orders.description:",
        ] {
            assert!(p.ignored.iter().any(|i| i.starts_with(key)), "{key} not reported as ignored: {:?}", p.ignored);
        }
        let e =
            plan(&parse("provider:\n  name: scaleway\n  runtime: go121\nfunctions:\n  f:\n    handler: x\n").unwrap())
                .unwrap_err();
        assert!(e.to_string().starts_with("runtime: 'go121' is not served"), "{e}");
    }

    #[test]
    fn variables_and_typed_inputs_are_read_as_the_framework_does() {
        let text = "provider:\n  name: scaleway\n  runtime: python310\n  secret:\n    A: ${SET}\n    B: ${UNSET}\n    C: 'x-${env:SET}-y'\nfunctions:\n  f:\n    handler: h.handle\n    events:\n      - schedule:\n          rate: '1 * * * *'\n          input:\n            n: 1\n            s: '1'\n            b: true\n";
        let env = |n: &str| (n == "SET").then(|| "v".to_string());
        let p = plan_with_env(&parse(text).unwrap(), &env).unwrap();
        let (_, req, triggers) = &p.functions[0];
        assert_eq!((req.secrets["A"].as_str(), req.secrets["C"].as_str()), ("v", "x-v-y"));
        assert!(!req.secrets.contains_key("B"));
        assert!(p.ignored.iter().any(|i| i.starts_with("provider.secret.B: ${UNSET} is not set")), "{:?}", p.ignored);
        assert_eq!(triggers[0].data, Some(serde_json::json!({"n": 1, "s": "1", "b": true})));
        let bad = text.replace("${env:SET}", "${env:NOPE}");
        let e = plan_with_env(&parse(&bad).unwrap(), &env).unwrap_err().to_string();
        assert!(e.starts_with("provider.secret.C: ${env:NOPE}: NOPE is not set"), "{e}");
        let bad = text.replace("${env:SET}", "${self:custom.x}");
        let e = plan_with_env(&parse(&bad).unwrap(), &env).unwrap_err().to_string();
        assert!(e.contains("only ${env:NAME} variables"), "{e}");
    }

    /// The public examples that ship a serverless.yml, when fetched (FNBOX_SLS_EXAMPLES=DIR).
    #[test]
    fn scaleway_examples_are_read() {
        let Some(dir) = std::env::var_os("FNBOX_SLS_EXAMPLES") else {
            eprintln!("SKIPPED LOUDLY: set FNBOX_SLS_EXAMPLES to a checkout of scaleway/serverless-examples to read its serverless.yml files");
            return;
        };
        let mut read = 0;
        for sub in [
            "functions/cors-python",
            "functions/postgre-sql-python",
            "functions/python-dependencies",
            "functions/cors-node",
        ] {
            let path = std::path::Path::new(&dir).join(sub).join("serverless.yml");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let p = plan(&parse(&text).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!p.functions.is_empty(), "{}", path.display());
            read += 1;
        }
        assert_eq!(read, 4);
    }
}

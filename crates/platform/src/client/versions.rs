//! `fnbox versions NAME` and `fnbox rollback NAME [VERSION]`.

use super::{print_json, Target};
use crate::api;
use crate::error::Result;
use crate::versions::VersionView;
use bytes::Bytes;
use hyper::Method;

pub async fn versions(t: &Target, name: &str) -> Result<i32> {
    let path = format!("/api/v1/functions/{name}/versions");
    let v = t.admin()?.call(Method::GET, &path, &[], Bytes::new()).await?.json()?;
    let rows: Vec<VersionView> = api::read(&v, &format!("GET {path}"))?;
    if t.json {
        print_json(&v);
        return Ok(0);
    }
    println!(
        "{:<8} {:<20} {:<12} {:<8} {:>7} {:<7} NOTE",
        "VERSION", "DEPLOYED", "CODE", "RUNTIME", "MEMORY", "SANDBOX"
    );
    for r in rows {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.deployed_at);
        let mut note = Vec::new();
        if r.serving {
            note.push("serving".to_string());
        }
        if let Some(old) = r.rollback_of {
            note.push(format!("rollback to {old}"));
        }
        println!(
            "{:<8} {:<20} {:<12} {:<8} {:>7} {:<7} {}",
            r.version,
            humantime::format_rfc3339_seconds(at).to_string(),
            r.code.get(..12).unwrap_or(""),
            r.runtime.as_str(),
            format!("{}M", r.memory_mb),
            r.sandbox.as_str(),
            note.join(", ")
        );
    }
    Ok(0)
}

pub async fn rollback(t: &Target, name: &str, version: Option<u64>) -> Result<i32> {
    let body = match version {
        Some(v) => serde_json::json!({ "version": v }).to_string(),
        None => String::new(),
    };
    let path = format!("/api/v1/functions/{name}/rollback");
    let v = t.admin()?.call(Method::POST, &path, &[], Bytes::from(body)).await?.json()?;
    let now: api::FunctionView = api::read(&v, &format!("POST {path}"))?;
    if t.json {
        print_json(&v);
    } else {
        let to = version.map(|v| format!("version {v}")).unwrap_or_else(|| "the version before".into());
        println!("rolled {name} back to {to}: now serving as version {}", now.version);
    }
    Ok(0)
}

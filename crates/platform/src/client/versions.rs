//! `fnbox versions NAME` and `fnbox rollback NAME [VERSION]`.

use super::{print_json, Target};
use crate::error::Result;
use bytes::Bytes;
use hyper::Method;

pub async fn versions(t: &Target, name: &str) -> Result<i32> {
    let v =
        t.admin()?.call(Method::GET, &format!("/api/v1/functions/{name}/versions"), &[], Bytes::new()).await?.json()?;
    if t.json {
        print_json(&v);
        return Ok(0);
    }
    println!(
        "{:<8} {:<20} {:<12} {:<8} {:>7} {:<7} NOTE",
        "VERSION", "DEPLOYED", "CODE", "RUNTIME", "MEMORY", "SANDBOX"
    );
    for r in v.as_array().cloned().unwrap_or_default() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(r["deployed_at"].as_u64().unwrap_or(0));
        let mut note = Vec::new();
        if r["serving"].as_bool() == Some(true) {
            note.push("serving".to_string());
        }
        if let Some(old) = r["rollback_of"].as_u64() {
            note.push(format!("rollback to {old}"));
        }
        println!(
            "{:<8} {:<20} {:<12} {:<8} {:>7} {:<7} {}",
            r["version"],
            humantime::format_rfc3339_seconds(at).to_string(),
            r["code"].as_str().unwrap_or("").get(..12).unwrap_or(""),
            r["runtime"].as_str().unwrap_or(""),
            format!("{}M", r["memory_mb"]),
            r["sandbox"].as_str().unwrap_or(""),
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
    if t.json {
        print_json(&v);
    } else {
        let to = version.map(|v| format!("version {v}")).unwrap_or_else(|| "the version before".into());
        println!("rolled {name} back to {to}: now serving as version {}", v["version"]);
    }
    Ok(0)
}

//! `fnbox trigger create|ls|rm`: CRON and queue triggers of functions.

use super::{print_json, Target};
use crate::error::{Error, Result};
use crate::triggers::CreateTrigger;
use bytes::Bytes;
use hyper::Method;

pub async fn create(t: &Target, function: &str, req: &CreateTrigger) -> Result<i32> {
    crate::function::check_name(function)?;
    let body = serde_json::to_vec(req).map_err(|e| Error::Internal(e.to_string()))?;
    let headers = [("content-type".to_string(), "application/json".to_string())];
    let path = format!("/api/v1/functions/{function}/triggers");
    let v = t.admin()?.call(Method::POST, &path, &headers, body.into()).await?.json()?;
    if t.json {
        print_json(&v);
    } else {
        println!(
            "created {} trigger {} ({}) for {function}: {}",
            v["kind"].as_str().unwrap_or(""),
            v["name"].as_str().unwrap_or(""),
            v["id"].as_str().unwrap_or(""),
            state(&v)
        );
    }
    Ok(0)
}

/// What a trigger listing says of its state: the next runs of a CRON trigger, a consumer's
/// state.
fn state(v: &serde_json::Value) -> String {
    match v["next_runs"].as_array() {
        Some(next) if !next.is_empty() => {
            format!("next {}", next.iter().filter_map(|n| n.as_str()).collect::<Vec<_>>().join(", "))
        }
        Some(_) => "never runs (no date matches)".into(),
        None => v["status"].as_str().unwrap_or("").to_string(),
    }
}

pub async fn ls(t: &Target, function: Option<&str>) -> Result<i32> {
    let path = match function {
        Some(f) => format!("/api/v1/functions/{f}/triggers"),
        None => "/api/v1/triggers".to_string(),
    };
    let v = t.admin()?.call(Method::GET, &path, &[], Bytes::new()).await?.json()?;
    if t.json {
        print_json(&v);
        return Ok(0);
    }
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no triggers: make one with `fnbox trigger create FUNCTION --cron '*/5 * * * *'`");
        return Ok(0);
    }
    println!("{:<16} {:<20} {:<20} {:<5} {:<24} STATE", "ID", "NAME", "FUNCTION", "KIND", "SOURCE");
    for r in rows {
        let source = match r["kind"].as_str() {
            Some("cron") => r["schedule"].as_str().unwrap_or("").to_string(),
            _ => r["subject"].as_str().unwrap_or("").to_string(),
        };
        println!(
            "{:<16} {:<20} {:<20} {:<5} {:<24} {}",
            r["id"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or(""),
            r["function"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            source,
            state(&r)
        );
    }
    Ok(0)
}

pub async fn rm(t: &Target, id: &str) -> Result<i32> {
    let v = t.admin()?.call(Method::DELETE, &format!("/api/v1/triggers/{id}"), &[], Bytes::new()).await?.json()?;
    if t.json {
        print_json(&v);
    } else {
        println!("removed trigger {id} of {}", v["function"].as_str().unwrap_or(""));
    }
    Ok(0)
}

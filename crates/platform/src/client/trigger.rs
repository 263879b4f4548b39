//! `fnbox trigger create|ls|rm`: CRON and queue triggers of functions.

use super::{print_json, Target};
use crate::api;
use crate::error::{Error, Result};
use crate::triggers::{CreateTrigger, Source, TriggerRemoved, TriggerState, TriggerView};
use bytes::Bytes;
use hyper::Method;

pub async fn create(t: &Target, function: &str, req: &CreateTrigger) -> Result<i32> {
    crate::function::check_name(function)?;
    let body = serde_json::to_vec(req).map_err(|e| Error::Internal(e.to_string()))?;
    let headers = [("content-type".to_string(), "application/json".to_string())];
    let path = format!("/api/v1/functions/{function}/triggers");
    let v = t.admin()?.call(Method::POST, &path, &headers, body.into()).await?.json()?;
    let made: TriggerView = api::read(&v, &format!("POST {path}"))?;
    if t.json {
        print_json(&v);
    } else {
        let tr = &made.trigger;
        println!("created {} trigger {} ({}) for {function}: {}", tr.source.kind(), tr.name, tr.id, state(&made.state));
    }
    Ok(0)
}

/// What a trigger listing says of its state: the next runs of a CRON trigger, a consumer's
/// state.
fn state(s: &TriggerState) -> String {
    match s {
        TriggerState::Scheduled { next_runs, .. } if !next_runs.is_empty() => format!("next {}", next_runs.join(", ")),
        TriggerState::Scheduled { .. } => "never runs (no date matches)".into(),
        TriggerState::Status { status } => status.clone(),
        TriggerState::Nothing {} => String::new(),
    }
}

pub async fn ls(t: &Target, function: Option<&str>) -> Result<i32> {
    let path = match function {
        Some(f) => format!("/api/v1/functions/{f}/triggers"),
        None => "/api/v1/triggers".to_string(),
    };
    let v = t.admin()?.call(Method::GET, &path, &[], Bytes::new()).await?.json()?;
    let rows: Vec<TriggerView> = api::read(&v, &format!("GET {path}"))?;
    if t.json {
        print_json(&v);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no triggers: make one with `fnbox trigger create FUNCTION --cron '*/5 * * * *'`");
        return Ok(0);
    }
    println!("{:<16} {:<20} {:<20} {:<5} {:<24} STATE", "ID", "NAME", "FUNCTION", "KIND", "SOURCE");
    for r in rows {
        let tr = &r.trigger;
        let source = match &tr.source {
            Source::Cron { schedule, .. } => schedule.as_str(),
            Source::Sqs(s) => s.queue_url.as_str(),
            Source::Nats(s) => s.subject.as_str(),
            Source::Async => "",
        };
        println!(
            "{:<16} {:<20} {:<20} {:<5} {:<24} {}",
            tr.id,
            tr.name,
            tr.function,
            tr.source.kind(),
            source,
            state(&r.state)
        );
    }
    Ok(0)
}

pub async fn rm(t: &Target, id: &str) -> Result<i32> {
    let path = format!("/api/v1/triggers/{id}");
    let v = t.admin()?.call(Method::DELETE, &path, &[], Bytes::new()).await?.json()?;
    let removed: TriggerRemoved = api::read(&v, &format!("DELETE {path}"))?;
    if t.json {
        print_json(&v);
    } else {
        println!("removed trigger {id} of {}", removed.function);
    }
    Ok(0)
}

/// An SQS trigger's access key and secret key, from `--credentials FILE|env`: a file of
/// `KEY = VALUE` lines (AWS's credentials file: `aws_access_key_id`, `aws_secret_access_key`;
/// or `access_key`, `secret_key`), or the environment (`$AWS_ACCESS_KEY_ID`,
/// `$AWS_SECRET_ACCESS_KEY`). Never from the command line, where `ps` shows it.
pub fn credentials(spec: &str) -> Result<(String, String)> {
    if spec == "env" {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        return match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(k), Some(s)) => Ok((k, s)),
            _ => Err(Error::Invalid(
                "--credentials env: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give a file".into(),
            )),
        };
    }
    let path = std::path::Path::new(spec);
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Invalid(format!("--credentials {spec}: cannot read it ({e}): give a credentials file, or env"))
    })?;
    if meta.len() > 64 << 10 {
        return Err(Error::Invalid(format!("--credentials {spec}: over 64 KiB: is it a credentials file?")));
    }
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        eprintln!("warning: --credentials {spec} can be read by other users: chmod 0600 it");
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("--credentials {spec}: cannot read it ({e})")))?;
    parse_credentials(&text).map_err(|why| Error::Invalid(format!("--credentials {spec}: {why}")))
}

fn parse_credentials(text: &str) -> std::result::Result<(String, String), String> {
    let (mut key, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        let slot = match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" | "access_key" => &mut key,
            "aws_secret_access_key" | "secret_key" => &mut secret,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("'{}' is given twice (several profiles?): keep one", k.trim()));
        }
        *slot = Some(v.trim().trim_matches('"').to_string());
    }
    match (key, secret) {
        (Some(k), Some(s)) if !k.is_empty() && !s.is_empty() => Ok((k, s)),
        _ => Err("it needs an `aws_access_key_id = ...` and an `aws_secret_access_key = ...` line".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_files_are_read_as_aws_writes_them() {
        let aws = "[default]\naws_access_key_id = SCWABC\naws_secret_access_key=s3cr3t/x+y\n# c\n";
        assert_eq!(super::parse_credentials(aws).unwrap(), ("SCWABC".into(), "s3cr3t/x+y".into()));
        assert_eq!(super::parse_credentials("access_key=a\nsecret_key=\"b\"").unwrap(), ("a".into(), "b".into()));
        assert!(super::parse_credentials("access_key=a").unwrap_err().contains("needs"));
        let two = "[a]\naccess_key=a\nsecret_key=b\n[b]\naccess_key=c\n";
        assert!(super::parse_credentials(two).unwrap_err().contains("twice"));
    }
}

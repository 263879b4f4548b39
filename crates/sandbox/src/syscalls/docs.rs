//! `fnbox syscalls`: the table rendered for people (text, Markdown) and for programs (JSON).

use super::{class_counts, rule, Action, Class, Route, Syscall, TABLE};
use crate::spec::SandboxKind;
use std::fmt::Write as _;

/// How `fnbox syscalls` prints the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    Table,
    Json,
    #[cfg_attr(feature = "clap", value(alias = "md"))]
    Markdown,
}

/// The class a syscall has in `kind`: v2's documented class, or v1's Docker verdict mapped to
/// native / partial / unsupported.
fn class_in(s: &Syscall, kind: SandboxKind) -> Class {
    match kind {
        SandboxKind::V2 => s.class,
        SandboxKind::V1 => match s.docker {
            Route::Allow => Class::Native,
            Route::Rule(_) => Class::Partial,
            _ => Class::Unsupported,
        },
    }
}

fn route_text(r: Route) -> String {
    match r {
        Route::Allow => "allow".into(),
        Route::Notify => "sentry".into(),
        Route::Enosys => "ENOSYS".into(),
        Route::Deny => "EPERM".into(),
        Route::Rule(name) => {
            let refused = rule(name)
                .map(|r| {
                    let mut errs: Vec<String> = r
                        .branches
                        .iter()
                        .map(|b| b.action)
                        .chain([r.default])
                        .filter_map(|a| match a {
                            Action::Errno(e) => Some(errno_name(e).to_string()),
                            _ => None,
                        })
                        .collect();
                    errs.dedup();
                    errs.join("/")
                })
                .unwrap_or_default();
            if refused.is_empty() {
                format!("by arguments ({name})")
            } else {
                format!("by arguments ({name}; else {refused})")
            }
        }
    }
}

pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOSYS => "ENOSYS",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EACCES => "EACCES",
        _ => "errno",
    }
}

fn note_in(s: &Syscall, kind: SandboxKind) -> &'static str {
    match kind {
        SandboxKind::V2 => s.note,
        SandboxKind::V1 => match s.docker {
            Route::Deny => "refused by Docker's default seccomp profile",
            Route::Enosys => "ENOSYS so that libc falls back to clone",
            Route::Rule("ioctl-no-tiocsti") => "all requests except TIOCSTI and TIOCLINUX",
            Route::Rule(_) => "allowed for the arguments Docker allows",
            _ => "",
        },
    }
}

fn summary(kind: SandboxKind) -> String {
    let counts: Vec<String> = match kind {
        SandboxKind::V2 => class_counts().iter().map(|(c, n)| format!("{n} {}", c.as_str())).collect(),
        SandboxKind::V1 => [Class::Native, Class::Partial, Class::Unsupported]
            .iter()
            .map(|c| format!("{} {}", TABLE.iter().filter(|s| class_in(s, kind) == *c).count(), c.as_str()))
            .collect(),
    };
    format!("{} x86-64 syscalls in sandbox {kind}: {}", TABLE.len(), counts.join(", "))
}

/// Renders the table for `kind` in `format`.
pub fn render(kind: SandboxKind, format: Format) -> String {
    let mut out = String::new();
    let route = |s: &Syscall| match kind {
        SandboxKind::V2 => s.v2,
        SandboxKind::V1 => s.docker,
    };
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = TABLE
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "nr": s.nr,
                        "name": s.name,
                        "class": class_in(s, kind).as_str(),
                        "action": route_text(route(s)),
                        "note": note_in(s, kind),
                    })
                })
                .collect();
            let doc = serde_json::json!({ "sandbox": kind.to_string(), "arch": "x86_64", "summary": summary(kind), "syscalls": rows });
            out = serde_json::to_string_pretty(&doc).unwrap_or_default();
            out.push('\n');
        }
        Format::Markdown | Format::Table => {
            let rows: Vec<[String; 5]> = TABLE
                .iter()
                .map(|s| {
                    let note = note_in(s, kind);
                    [
                        s.nr.to_string(),
                        s.name.to_string(),
                        class_in(s, kind).as_str().to_string(),
                        route_text(route(s)),
                        if format == Format::Markdown { note.replace('|', "\\|") } else { note.to_string() },
                    ]
                })
                .collect();
            if format == Format::Markdown {
                let _ = writeln!(out, "# Syscalls in fnbox sandbox {kind}\n\n{}.\n", summary(kind));
                let _ = writeln!(out, "| nr | syscall | class | action | note |\n|---:|---|---|---|---|");
                for [nr, name, class, action, note] in &rows {
                    let _ = writeln!(out, "| {nr} | `{name}` | {class} | {action} | {note} |");
                }
            } else {
                let _ = writeln!(out, "{:>4}  {:<24} {:<12} {:<40} NOTE", "NR", "SYSCALL", "CLASS", "ACTION");
                for [nr, name, class, action, note] in &rows {
                    let _ = writeln!(out, "{nr:>4}  {name:<24} {class:<12} {action:<40} {note}");
                }
                let _ = writeln!(out, "\n{}", summary(kind));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lists_every_row_with_its_class() {
        let v: serde_json::Value = serde_json::from_str(&render(SandboxKind::V2, Format::Json)).unwrap();
        let rows = v["syscalls"].as_array().unwrap();
        assert_eq!(rows.len(), TABLE.len());
        let io = rows.iter().find(|r| r["name"] == "io_uring_setup").unwrap();
        assert_eq!(io["class"], "unsupported");
        assert_eq!(io["action"], "ENOSYS");
        let open = rows.iter().find(|r| r["name"] == "openat").unwrap();
        assert_eq!(open["action"], "sentry");
    }

    #[test]
    fn markdown_and_table_carry_the_summary() {
        let md = render(SandboxKind::V2, Format::Markdown);
        assert!(md.contains("| 257 | `openat` | emulated | sentry |"));
        assert!(render(SandboxKind::V1, Format::Table).contains("x86-64 syscalls in sandbox v1"));
    }
}

//! The compatibility report: which unsupported or partial syscalls a program hit, how often,
//! and what that means for choosing between v1 and v2.

use crate::syscalls::{self, Class};
use crate::wire::Protocol;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The version of the Sentry's end report; both ends refuse any other.
pub const VERSION: u32 = 1;

/// The end report: what the Sentry sends its launcher, once, when the sandbox's last task is
/// gone (a [`Counts`], one JSON message on their socket pair; see "Processes and their
/// messages" in docs/architecture.md). Written by `sentry/process.rs`, read by the launcher.
pub const END: Protocol = Protocol { peer: "the Sentry", what: "an end report", version: VERSION };

/// Counters kept by the Sentry: the end report's fields.
#[derive(Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Refused calls: syscall number → (count, errno answered).
    pub refused: BTreeMap<u32, (u64, i32)>,
    /// Partial emulations: (syscall number, what) → count.
    pub notes: BTreeMap<String, (u32, u64)>,
}

impl Counts {
    pub fn refuse(&mut self, nr: u32, errno: i32) {
        let e = self.refused.entry(nr).or_insert((0, errno));
        e.0 += 1;
    }

    pub fn note(&mut self, nr: u32, what: &str) {
        let e = self.notes.entry(format!("{nr}:{what}")).or_insert((nr, 0));
        e.1 += 1;
    }
}

fn name(nr: u32) -> String {
    syscalls::by_nr(nr).map_or_else(|| format!("syscall_{nr}"), |s| s.name.to_string())
}

/// The advice for a user, from what was hit.
fn verdict(c: &Counts) -> String {
    let hard: Vec<String> = c
        .refused
        .keys()
        .filter(|nr| syscalls::by_nr(**nr).is_none_or(|s| s.class == Class::Unsupported))
        .map(|nr| name(*nr))
        .collect();
    if c.refused.is_empty() && c.notes.is_empty() {
        "compatible: the program used only syscalls v2 implements fully. Run it in v2.".into()
    } else if hard.is_empty() {
        "mostly compatible: the program hit partial behaviour only (listed above). Check the notes; v2 is likely fine."
            .into()
    } else {
        format!(
            "the program called syscalls v2 refuses ({}). If it failed or misbehaved because of them, run it in v1 (--sandbox v1), which offers the full Linux interface.",
            hard.join(", ")
        )
    }
}

/// Renders the report as text (or JSON when `json`).
pub fn render(c: &Counts, argv: &[String], json: bool) -> String {
    if json {
        let refused: Vec<serde_json::Value> = c
            .refused
            .iter()
            .map(|(nr, (count, errno))| {
                let s = syscalls::by_nr(*nr);
                serde_json::json!({
                    "nr": nr,
                    "name": name(*nr),
                    "class": s.map_or("unsupported", |s| s.class.as_str()),
                    "count": count,
                    "answer": syscalls::errno_name(*errno),
                    "note": s.map_or("", |s| s.note),
                })
            })
            .collect();
        let notes: Vec<serde_json::Value> = c
            .notes
            .iter()
            .map(|(k, (nr, count))| serde_json::json!({"name": name(*nr), "what": k.split_once(':').map_or("", |x| x.1), "count": count}))
            .collect();
        let doc = serde_json::json!({"program": argv, "sandbox": crate::spec::SandboxKind::V2, "refused": refused, "partial": notes, "verdict": verdict(c)});
        return serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    }
    let mut s = String::new();
    let _ = writeln!(s, "fnbox v2 compatibility report for: {}\n", argv.join(" "));
    if c.refused.is_empty() {
        let _ = writeln!(s, "Refused syscalls: none.");
    } else {
        let _ = writeln!(s, "Refused syscalls:");
        let _ = writeln!(s, "  {:<22} {:>7}  {:<12} {:<8} WHY", "SYSCALL", "CALLS", "CLASS", "ANSWER");
        for (nr, (count, errno)) in &c.refused {
            let sc = syscalls::by_nr(*nr);
            let _ = writeln!(
                s,
                "  {:<22} {:>7}  {:<12} {:<8} {}",
                name(*nr),
                count,
                sc.map_or("unsupported", |x| x.class.as_str()),
                syscalls::errno_name(*errno),
                sc.map_or("", |x| x.note)
            );
        }
    }
    if !c.notes.is_empty() {
        let _ = writeln!(s, "\nPartial behaviour met:");
        for (k, (nr, count)) in &c.notes {
            let _ = writeln!(s, "  {:<22} {:>7}  {}", name(*nr), count, k.split_once(':').map_or("", |x| x.1));
        }
    }
    let _ = writeln!(s, "\nVerdict: {}", verdict(c));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let mut c = Counts::default();
        assert!(render(&c, &["x".into()], false).contains("Verdict: compatible"));
        c.refuse(425, libc::ENOSYS);
        c.refuse(425, libc::ENOSYS);
        let t = render(&c, &["x".into()], false);
        assert!(t.contains("io_uring_setup") && t.contains("      2") && t.contains("run it in v1"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&render(&c, &["x".into()], true)).unwrap();
        assert_eq!(j["refused"][0]["count"], 2);
        assert_eq!(j["refused"][0]["answer"], "ENOSYS");
    }

    #[test]
    fn the_end_report_round_trips_and_a_bad_one_is_an_error() {
        let mut c = Counts::default();
        c.refuse(425, libc::ENOSYS);
        c.note(2, "O_TMPFILE");
        crate::wire::tests::round_trips(&END, &[Counts::default(), c]);
        let err = |s: &str| END.decode::<Counts>(s.as_bytes()).unwrap_err().0;
        let e = err(r#"{"refused":{},"notes":{}}"#);
        assert!(e.contains("the Sentry") && e.contains("no protocol version"), "{e}");
        assert!(err(r#"{"v":1,"refused":{},"notes":{},"extra":1}"#).contains("unknown field `extra`"));
        assert!(err(r#"{"v":1,"refused":{"x":[1,2]},"notes":{}}"#).contains("expected an end report"));
    }
}

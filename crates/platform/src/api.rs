//! The admin API's answers (`/api/v1/...`, served by `gateway/admin.rs`), as types the server
//! serializes and the CLI client (`client/`) deserializes: one definition for both ends (see
//! "Processes and their messages" in docs/architecture.md). The API's version is in its
//! path; an answer the client cannot read is an error that names the request, never a
//! default value.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::build::Event as BuildEvent;
pub use crate::function::FunctionView;
pub use crate::gateway::reply::Refusal;
pub use crate::platform::Listed;
pub use crate::registry::{NewToken, TokenInfo};
pub use crate::triggers::calls::{InvocationView, Queued};
pub use crate::triggers::{TriggerRemoved, TriggerState, TriggerView};
pub use crate::versions::VersionView;

/// `POST /api/v1/code`: where the code was stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Uploaded {
    pub digest: String,
}

/// `PUT /api/v1/functions/NAME`: the function as deployed, and whether anything changed.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Deployed {
    #[serde(flatten)]
    pub function: FunctionView,
    pub changed: bool,
}

/// Reads the server's answer to `request` as `T`.
pub fn read<T: DeserializeOwned>(v: &serde_json::Value, request: &str) -> Result<T> {
    T::deserialize(v).map_err(|e| {
        Error::Invalid(format!(
            "the server's answer to {request} is not what this fnbox expects ({e}): is the server another fnbox version?"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::function::{DeployRequest, Function};

    fn view() -> FunctionView {
        let req = DeployRequest::new(crate::function::Runtime::Python3, "a".repeat(64));
        let config = req.into_config().unwrap();
        Function { name: "f".into(), version: 3, config, updated_at: 9 }.view(2)
    }

    /// What the server writes, the client reads back as the same values.
    #[test]
    fn views_round_trip() {
        let d = Deployed { function: view(), changed: true };
        let back: Deployed = read(&serde_json::to_value(&d).unwrap(), "PUT").unwrap();
        assert_eq!((back.function.version, back.function.config, back.changed), (3, d.function.config, true));
        let listed = vec![Listed::Serving(view()), Listed::Disabled { name: "g".into(), disabled: "why".into() }];
        let back: Vec<Listed> = read(&serde_json::to_value(&listed).unwrap(), "GET").unwrap();
        assert!(matches!(&back[0], Listed::Serving(v) if v.name == "f" && v.instances == 2));
        assert!(matches!(&back[1], Listed::Disabled { name, disabled } if name == "g" && disabled == "why"));
        let t = NewToken { id: "i".into(), function: "f".into(), token: "t".into(), created_at: 1 };
        assert_eq!(read::<NewToken>(&serde_json::to_value(&t).unwrap(), "POST").unwrap(), t);
        let u = Uploaded { digest: "d".into() };
        assert_eq!(read::<Uploaded>(&serde_json::to_value(&u).unwrap(), "POST").unwrap(), u);
        for e in [
            BuildEvent::Waiting { builds_running: 2 },
            BuildEvent::Started {
                runtime: crate::function::Runtime::Node,
                sandbox: fnbox_sandbox::spec::SandboxKind::V2,
                memory_mb: 1024,
                timeout_s: 600,
            },
            BuildEvent::Output { stream: crate::logs::Stream::Stderr, line: "npm ci".into() },
            BuildEvent::Done { digest: "d".into(), seconds: 1.5, zip_bytes: 10, lines_not_shown: 0 },
            BuildEvent::Failed { error: "no".into() },
        ] {
            assert_eq!(read::<BuildEvent>(&serde_json::to_value(&e).unwrap(), "a build").unwrap(), e);
        }
    }

    /// A trigger's view is read back whole, its state too; an SQS trigger's secret is never in
    /// it, and a misspelt field is an error.
    #[test]
    fn trigger_views_round_trip_without_secrets() {
        let runner = crate::triggers::Runner::default();
        let req = |r: crate::triggers::CreateTrigger| r.into_trigger("f").unwrap();
        let cron = req(crate::triggers::CreateTrigger { cron: Some("*/5 * * * *".into()), ..Default::default() });
        let sqs = req(crate::triggers::CreateTrigger {
            sqs: Some("https://sqs.fr-par.scw.cloud/1234/q".into()),
            access_key: Some("AK".into()),
            secret_key: Some("SECRET".into()),
            ..Default::default()
        });
        let nats = req(crate::triggers::CreateTrigger { nats: Some("orders.new".into()), ..Default::default() });
        let views = [&cron, &sqs, &nats].map(|t| crate::triggers::view(&runner, t));
        let wire = serde_json::to_value(&views).unwrap();
        assert!(!wire.to_string().contains("SECRET") && wire[1].get("secret_key").is_none(), "{wire}");
        let back: Vec<TriggerView> = read(&wire, "GET /api/v1/triggers").unwrap();
        assert_eq!((back[0].trigger.id.as_str(), back[0].trigger.source.kind()), (cron.id.as_str(), "cron"));
        assert!(matches!(&back[0].state, TriggerState::Scheduled { next_runs, .. } if next_runs.len() == 3));
        assert_eq!(back[1].state, TriggerState::Status { status: "stopped".into() });
        assert!(matches!(&back[2].trigger.source, crate::triggers::Source::Nats(s) if s.subject == "orders.new"));
        assert_eq!(back[2].state, TriggerState::Status { status: "stopped".into() });
        let mut typo = wire[0].clone();
        let fields = typo.as_object_mut().unwrap();
        let id = fields.remove("id").unwrap();
        fields.insert("idd".into(), id);
        let e = read::<TriggerView>(&typo, "GET /api/v1/triggers").unwrap_err().to_string();
        assert!(e.contains("GET /api/v1/triggers") && e.contains("id"), "{e}");
        let gone = TriggerRemoved { function: "f".into(), removed: "trg-1".into() };
        assert_eq!(read::<TriggerRemoved>(&serde_json::to_value(&gone).unwrap(), "DELETE").unwrap(), gone);
        assert!(read::<TriggerRemoved>(&serde_json::json!({ "removed": "trg-1" }), "DELETE").is_err());
    }

    #[test]
    fn an_unexpected_answer_is_an_error_naming_the_request() {
        let e = read::<Uploaded>(&serde_json::json!({"digets": "x"}), "POST /api/v1/code").unwrap_err().to_string();
        assert!(e.contains("POST /api/v1/code") && e.contains("digest"), "{e}");
        let e = read::<BuildEvent>(&serde_json::json!({"event": "exploded"}), "a build").unwrap_err().to_string();
        assert!(e.contains("exploded"), "{e}");
        assert!(read::<Vec<Listed>>(&serde_json::json!([{"name": "f"}]), "GET /api/v1/functions").is_err());
    }
}

//! `--log FILE --log-format json|text`: where the runtime's own messages go. containerd's
//! shim reads the last error from this file when a verb fails, so each message is one line
//! (`{"level":"error","msg":"...","time":"..."}` in JSON).

use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct Log {
    pub path: Option<PathBuf>,
    pub json: bool,
}

impl Log {
    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    pub fn info(&self, msg: &str) {
        self.write("info", msg);
    }

    fn write(&self, level: &str, msg: &str) {
        let Some(p) = &self.path else {
            // runc's default: without --log, messages go to standard error.
            eprintln!("fnbox-runc: {level}: {msg}");
            return;
        };
        let time = crate::state::now_rfc3339();
        let line = if self.json {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
        } else {
            format!("time=\"{time}\" level={level} msg={msg:?}")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(p) {
            let _ = writeln!(f, "{line}");
        }
    }
}

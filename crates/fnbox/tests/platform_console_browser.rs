//! The web console in a real browser (Chromium over WebDriver) that logs in with the keyboard,
//! sees the live log line and the charts, uploads, rolls back and makes tokens, is refused a
//! forged form, keeps its session across `kill -9`, fits a phone, and whose functions' pages
//! cannot read the console; skipped loudly when Chromium is absent.

mod common;
mod platform_support;

use common::*;
use platform_support::console::*;
use platform_support::*;
mod webdriver_support;

use std::time::Duration;
use webdriver_support::{Driver, ENTER};

#[test]
fn a_browser_logs_in_watches_live_logs_and_clicks_through() {
    let Some(d) = Driver::start() else { return };
    let mut s = Server::start("console-browser");
    let dir = TempDir::with("console-browser", &[("handler.py", &handler("one"))]);
    s.deploy("hello", dir.path(), &["--runtime", "python3"]);
    s.deploy("hello", dir.path(), &["--runtime", "python3", "--memory", "512"]);

    // Logged in with the keyboard only: Tab reaches the token field, then the button; Enter.
    d.open(&format!("{}/", s.url));
    assert!(d.source().contains("Admin token"), "the login page");
    d.screenshot("login");
    d.exec("document.activeElement.blur(); return 0;");
    d.tab_to("token", 5);
    d.keys(&s.admin_token());
    d.tab_to("BUTTON:Log in", 3);
    d.keys(ENTER);
    assert!(
        eventually(Duration::from_secs(10), || d.source().contains("/console/functions/hello")),
        "the list after login: {}",
        d.source()
    );
    d.screenshot("functions");
    assert!(
        !d.exec("return document.cookie").as_str().unwrap_or("x").contains("fnbox_session"),
        "the session cookie is visible to scripts"
    );

    // A request after the page opened: the page shows it without being reloaded, its log
    // line in the live view and its bar in the chart (the activity part refreshes itself).
    let page = format!("{}/console/functions/hello", s.url);
    d.open(&page);
    assert_eq!(d.ok_bars(), 0, "no request yet");
    d.exec("window.notReloaded = true; return 0;");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.get("/fn/hello/").text(), "one");
    assert!(
        eventually(Duration::from_secs(15), || d.text("#live").contains("served-one")),
        "the live log line: {}",
        d.text("#live")
    );
    assert!(
        eventually(Duration::from_secs(30), || d.ok_bars() == 1
            && d.text("#activity .totals").starts_with("1 requests")),
        "the chart shows the request: {} bars, {}",
        d.ok_bars(),
        d.text("#activity .totals")
    );
    assert_eq!(d.exec("return window.notReloaded === true"), serde_json::json!(true), "the page was reloaded");
    assert!(d.text("#chart-requests figcaption").contains("2xx 1"), "{}", d.text("#chart-requests figcaption"));
    // The live line is text: the function's markup is not a tag on the page.
    assert!(d.text("#live").contains("<script>alert(1)</script>"));
    assert_eq!(d.exec("return document.querySelectorAll('#live script').length"), serde_json::json!(0));
    d.screenshot("function");

    // The keyboard reaches every form of the page, each stop with a focus ring.
    d.open(&page);
    d.exec("document.activeElement.blur(); return 0;");
    let order = d.tab_to("BUTTON:Create a token", 80);
    for want in ["BUTTON:Log out", "BUTTON:Filter", "BUTTON:Roll back to 1", "zip", "BUTTON:Deploy"] {
        assert!(order.iter().any(|o| o == want), "Tab skips {want}: {order:?}");
    }

    // A new version through the page's upload form: the file input, then Deploy.
    let zip = dir.path().join("two.zip");
    std::fs::write(&zip, zip_of(dir.path(), "two")).unwrap();
    let input = d.find("#zip");
    d.cmd("POST", &format!("element/{input}/value"), serde_json::json!({ "text": zip.display().to_string() }));
    d.click("form[action$='/deploy'] button");
    assert!(eventually(Duration::from_secs(30), || d.source().contains("Deployed")), "{}", d.source());
    // The page says "Deployed" as the new version is stored; under load an idle instance of
    // the old one answered once more (seen in CI), so the switch is given a few seconds.
    assert!(
        eventually(Duration::from_secs(10), || s.get("/fn/hello/").text() == "two"),
        "the new version never answered"
    );

    // Roll back with the first button (to version 2, the one before the upload).
    d.click("form[action$='/rollback'] button");
    assert!(eventually(Duration::from_secs(20), || d.source().contains("Rolled back")));
    assert!(stdout(&s.cli(&["versions", "hello"])).contains("rollback to 2"));
    assert_eq!(s.get("/fn/hello/").text(), "one");

    d.click("form[action$='/tokens'] button");
    assert!(eventually(Duration::from_secs(10), || d.source().contains("id=\"new-token\"")));
    assert_eq!(stdout(&s.cli(&["token", "ls", "hello"])).lines().count(), 1);
    d.click("form[action$='/revoke'] button");
    assert!(eventually(Duration::from_secs(10), || d.source().contains("The token is revoked")));
    assert!(stdout(&s.cli(&["token", "ls", "hello"])).is_empty());

    // A function that fills its in-memory /tmp, then is killed for memory: the memory chart
    // shows the files apart from the processes, and the OOM kill is marked on the timeline.
    let hog = TempDir::with("console-hog", &[("handler.py", HOG)]);
    s.deploy("hog", hog.path(), &["--runtime", "python3", "--memory", "128", "--timeout", "30"]);
    assert_eq!(s.get("/fn/hog/?files=1").text(), "filled");
    assert_eq!(s.get("/fn/hog/?oom=1").status, 502);
    let hog_page = format!("{}/console/functions/hog", s.url);
    let files_peak = |summary: &str| -> f64 {
        let at = summary.find("in-memory /tmp, /dev peak ").map(|i| i + 26).unwrap_or(summary.len());
        summary[at..].split(|c: char| c != '.' && !c.is_ascii_digit()).next().unwrap_or("").parse().unwrap_or(0.0)
    };
    assert!(
        eventually(Duration::from_secs(30), || {
            d.open(&hog_page);
            d.text("#chart-requests figcaption").contains("1 OOM kill")
                && files_peak(&d.text("#chart-memory figcaption")) >= 30.0
        }),
        "the OOM kill and the files: {} / {}",
        d.text("#chart-requests figcaption"),
        d.text("#chart-memory figcaption")
    );
    let orange = d.exec("return document.querySelectorAll('#chart-memory svg.chart rect[fill=\"#B87A00\"]').length");
    assert!(orange.as_u64().unwrap_or(0) >= 1, "no bar of in-memory files");
    d.exec("document.getElementById('h-charts').scrollIntoView(); return 0;");
    d.screenshot("function-oom");

    // A forged form on another site (a local file: a null, cross-site origin) is refused.
    let forged = dir.path().join("forged.html");
    std::fs::write(
        &forged,
        format!(
            "<!doctype html><form method=post action='{}/console/functions/hello/tokens'>\
             <input name=csrf value='{}'><button id=go>win a prize</button></form>",
            s.url,
            "0".repeat(64)
        ),
    )
    .unwrap();
    d.open(&format!("file://{}", forged.display()));
    d.click("#go");
    assert!(
        eventually(Duration::from_secs(10), || {
            let t = d.source();
            t.contains("refused") || t.contains("log in to the console first")
        }),
        "{}",
        d.source()
    );
    assert!(stdout(&s.cli(&["token", "ls", "hello"])).is_empty(), "a forged form made a token");

    // kill -9 and a restart (on another port: cookies ignore ports): the session, the logs
    // and the charts are still there.
    d.open(&page);
    let totals = d.text("#activity .totals");
    let bars = d.ok_bars();
    assert!(bars >= 1, "{totals}");
    s.kill9();
    s.launch();
    let page = format!("{}/console/functions/hello", s.url);
    d.open(&page);
    assert!(d.url().ends_with("/console/functions/hello"), "the session did not last: {}", d.url());
    assert_eq!(d.text("#activity .totals"), totals, "the history lasts");
    assert_eq!(d.ok_bars(), bars);
    let live = d.text("#live");
    assert!(live.contains("served-one") && live.contains("served-two"), "the logs last: {live}");

    // A phone: nothing scrolls sideways, the main controls are on screen.
    d.resize(390, 844);
    let controls = [
        "header button",
        ".tabs a",
        "#chart-requests svg.chart",
        ".filters button",
        "#zip",
        "form[action$='/deploy'] button",
        "form[action$='/tokens'] button",
    ];
    d.open(&page);
    d.fits(&controls);
    d.screenshot("function-phone");
    d.exec("document.getElementById('activity').scrollIntoView(); return 0;");
    d.screenshot("function-phone-charts");
    d.open(&format!("{}/console/", s.url));
    d.fits(&["header button", "a[href='/console/functions/hello']"]);
    d.resize(1280, 1400);
    d.open(&page);
    d.fits(&controls);

    // Without the session: the login page, nothing of the function.
    d.cmd("DELETE", "cookie", serde_json::Value::Null);
    d.open(&page);
    assert!(d.url().ends_with("/console/login"), "{}", d.url());
    assert!(!d.source().contains("served-"), "the page without a session shows logs");

    // A function's page, on the console's port, tries to read the console with the session.
    d.open(&format!("{}/console/login", s.url));
    let token = d.find("#token");
    d.cmd("POST", &format!("element/{token}/value"), serde_json::json!({ "text": s.admin_token() }));
    d.click("button[type=submit]");
    assert!(eventually(Duration::from_secs(10), || d.source().contains("/console/functions/hello")));
    let evil = TempDir::with("console-evil", &[("handler.py", EVIL)]);
    s.deploy("evil", evil.path(), &["--runtime", "python3"]);
    d.open(&format!("{}/fn/evil/", s.url));
    let title = || d.cmd("GET", "title", serde_json::Value::Null).as_str().unwrap_or("").to_string();
    assert!(eventually(Duration::from_secs(10), || title().starts_with("done")), "the page's script ran: {}", title());
    assert_eq!(title(), "done blocked", "a function's page read the console");
}

/// Fills 40 MiB of its in-memory /tmp and stays long enough to be sampled (every 5 s), or
/// allocates past its 128 MiB.
const HOG: &str = r#"
import time
def handle(event, context):
    q = event["queryStringParameters"]
    if "files" in q:
        with open("/tmp/fill", "wb") as f:
            f.write(b"x" * (40 << 20))
        time.sleep(7)
        return "filled"
    if "oom" in q:
        hog = bytearray(400 << 20)
        return str(len(hog))
    return "fine"
"#;

/// A page that reads the console with the browser's session, as a hostile function would.
const EVIL: &str = r#"
PAGE = """<!doctype html><title>start</title><script>
fetch('/console/', {credentials: 'include'}).then(function (r) { return r.text(); })
  .then(function (t) { document.title = t.indexOf('name="csrf"') >= 0 ? 'done read' : 'done blocked'; })
  .catch(function () { document.title = 'done blocked'; });
</script>"""

def handle(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": PAGE}
"#;

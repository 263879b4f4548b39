//! The web console, on the server's own port: `/` leads to `/console/`. Pages are rendered on
//! the server (minijinja templates compiled into the binary, charts as SVG: [`chart`]); the
//! only script follows the live logs. Everything but the login page and its stylesheet needs
//! a session ([`session`]); every form that changes something carries the session's CSRF
//! token, and a request from another origin is refused. See docs/architecture.md, "Console".

pub mod chart;
pub mod multipart;
mod pages;
pub mod session;

use crate::gateway::body::{BodyReader, Sender};
use crate::gateway::reply::{full, Body};
use crate::platform::Platform;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use minijinja::Environment;
pub use session::Sessions;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/logs.js");
const ACTIVITY_JS: &str = include_str!("assets/activity.js");
/// Largest form other than an upload.
const FORM_MAX: usize = 64 << 10;
/// Largest login form: a token is under 100 bytes. Read from anyone, in the shared budget.
const LOGIN_MAX: usize = 4 << 10;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("list.html", include_str!("templates/list.html")),
            ("function.html", include_str!("templates/function.html")),
            ("error.html", include_str!("templates/error.html")),
            ("activity.html", include_str!("templates/activity.html")),
        ] {
            // The templates are part of the binary; a test renders each of them.
            env.add_template(name, text).expect("a console template does not parse");
        }
        env
    })
}

/// Headers every console answer carries: no framing, no sniffing, no caching, no script or
/// style from anywhere but the console itself. The referrer goes to the console only: under
/// `no-referrer` a browser sends `Origin: null` with the console's own forms.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

fn secured(mut b: hyper::http::response::Builder) -> hyper::http::response::Builder {
    for (k, v) in SECURITY_HEADERS {
        b = b.header(k, v);
    }
    b
}

/// The same headers on an answer made elsewhere (the logs route's).
fn secure(mut r: Response<Body>) -> Response<Body> {
    for (k, v) in SECURITY_HEADERS {
        r.headers_mut().insert(k, hyper::header::HeaderValue::from_static(v));
    }
    r
}

fn respond(status: u16, ctype: &str, body: impl Into<bytes::Bytes>, cookie: Option<String>) -> Response<Body> {
    let mut b = secured(Response::builder().status(status).header("content-type", ctype));
    if let Some(c) = cookie {
        b = b.header("set-cookie", c);
    }
    b.body(full(body.into())).unwrap_or_else(|_| Response::new(full("bad response\n")))
}

pub(crate) fn render(status: u16, template: &str, ctx: minijinja::Value) -> Response<Body> {
    match templates().get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => respond(status, "text/html; charset=utf-8", html, None),
        Err(e) => {
            eprintln!("fnbox serve: console template {template}: {e}");
            respond(500, "text/plain; charset=utf-8", "the console could not render this page\n", None)
        }
    }
}

fn redirect(to: &str, cookie: Option<String>) -> Response<Body> {
    let mut b = secured(Response::builder().status(303).header("location", to));
    if let Some(c) = cookie {
        b = b.header("set-cookie", c);
    }
    b.body(full(format!("see {to}\n"))).unwrap_or_else(|_| Response::new(full("see other\n")))
}

/// An error page: `status`, what went wrong, and a way back.
pub(crate) fn error_page(status: u16, msg: &str, back: &str, csrf: Option<&str>) -> Response<Body> {
    render(status, "error.html", minijinja::context! { error => msg, back => back, csrf => csrf })
}

/// A state-changing request from another site (a forged form) is refused. A browser that
/// sends `Sec-Fetch-Site` is believed: `same-origin` (or `none`, typed by the user) passes,
/// anything else fails. `Origin: null` (a browser hiding the origin: sandboxed frames, data:
/// URLs, or a strict referrer policy) passes only with `Sec-Fetch-Site: same-origin`; another
/// `Origin` must be this server's. A client that sends neither (curl) has no ambient cookie to
/// abuse and still needs the CSRF token.
fn same_origin(h: &hyper::HeaderMap) -> bool {
    let host = h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
    let site = h.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("?"));
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match h.get("origin").map(|v| v.to_str().unwrap_or("")) {
        None => true,
        Some("null") => site == Some("same-origin"),
        Some(o) => !host.is_empty() && (o == format!("http://{host}") || o == format!("https://{host}")),
    }
}

/// A submitted form's fields: URL-encoded, or multipart (the upload).
pub(crate) struct Form {
    pub fields: HashMap<String, String>,
    pub file: Option<bytes::Bytes>,
}

/// Reads a form: `sender` is [`Sender::Admin`] once a session is shown, [`Sender::Login`]
/// before (counted in the shared budget, a short deadline).
async fn read_form(bodies: &BodyReader, req: Request<Incoming>, limit: usize, sender: Sender) -> Result<Form, String> {
    let ctype = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body =
        crate::gateway::admin::read_body(bodies, req, limit, "the form", sender).await.map_err(|e| e.to_string())?;
    if let Some(boundary) = multipart::boundary(&ctype) {
        let parts = multipart::parse(&body, &boundary).ok_or("the upload is not a well-formed multipart form")?;
        let mut form = Form { fields: HashMap::new(), file: None };
        for part in parts {
            if part.name == "zip" {
                form.file = Some(body.slice_ref(part.data));
            } else if part.data.len() <= 4096 {
                form.fields.entry(part.name).or_insert_with(|| String::from_utf8_lossy(part.data).into_owned());
            }
        }
        return Ok(form);
    }
    Ok(Form { fields: crate::urlenc::pairs(&String::from_utf8_lossy(&body)), file: None })
}

/// Everything under `/console/` (and `/`, which leads there).
pub async fn handle(p: &Arc<Platform>, bodies: &BodyReader, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/" || path == "/console" {
        return redirect("/console/", None);
    }
    let parts: Vec<String> =
        path.trim_start_matches("/console").split('/').filter(|s| !s.is_empty()).map(|s| s.to_string()).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let cookies = req.headers().get("cookie").and_then(|v| v.to_str().ok()).map(str::to_string);
    let session = p.console.find(&p.registry, cookies.as_deref());
    match (&method, parts.as_slice()) {
        // The stylesheet of the login page: the same for every server, nothing of its state.
        (&Method::GET, ["static", "console.css"]) => return respond(200, "text/css; charset=utf-8", CSS, None),
        (&Method::GET, ["login"]) if session.is_some() => return redirect("/console/", None),
        (&Method::GET, ["login"]) => return render(200, "login.html", minijinja::context! {}),
        (&Method::POST, ["login"]) => return login(p, bodies, req).await,
        _ => {}
    }
    // A name that is not a function's never reaches a page, a redirect or the platform.
    if let ["functions", name, ..] = parts.as_slice() {
        if let Err(e) = crate::function::check_name(name) {
            return respond(404, "text/plain; charset=utf-8", format!("{e}\n"), None);
        }
    }
    let Some(s) = session else {
        if method == Method::GET || method == Method::HEAD {
            return redirect("/console/login", None);
        }
        return respond(401, "text/plain; charset=utf-8", "log in to the console first\n", None);
    };
    if method == Method::GET || method == Method::HEAD {
        return match parts.as_slice() {
            [] => pages::list(p, &s.csrf),
            ["static", "logs.js"] => respond(200, "text/javascript; charset=utf-8", JS, None),
            ["static", "activity.js"] => respond(200, "text/javascript; charset=utf-8", ACTIVITY_JS, None),
            ["functions", name, "activity"] => {
                pages::activity_part(p, name, &crate::urlenc::pairs(req.uri().query().unwrap_or("")))
            }
            ["functions", name] => {
                let q = crate::urlenc::pairs(req.uri().query().unwrap_or(""));
                pages::function(p, name, &q, &s.csrf, None).await
            }
            ["functions", name, "logs"] => {
                let q = crate::urlenc::pairs(req.uri().query().unwrap_or(""));
                // A live stream ends with the session that opened it.
                match crate::gateway::admin::logs(p, name, &q, Some(Box::pin(s.ended()))).await {
                    Ok(r) => secure(r),
                    Err(e) => error_page(e.status(), &e.to_string(), "/console/", Some(&s.csrf)),
                }
            }
            _ => error_page(404, &format!("the console has no page {path}"), "/console/", Some(&s.csrf)),
        };
    }
    if method != Method::POST {
        return error_page(405, &format!("{method} is not used by the console"), "/console/", Some(&s.csrf));
    }
    if !same_origin(req.headers()) {
        return error_page(403, "this form was sent from another site: refused", "/console/", Some(&s.csrf));
    }
    let upload = matches!(parts.as_slice(), ["functions", _, "deploy"]);
    let limit = if upload { crate::codestore::ZIP_MAX as usize + FORM_MAX } else { FORM_MAX };
    let form = match read_form(bodies, req, limit, Sender::Admin).await {
        Ok(f) => f,
        Err(e) => return error_page(400, &e, "/console/", Some(&s.csrf)),
    };
    if !form.fields.get("csrf").is_some_and(|t| session::same(t, &s.csrf)) {
        return error_page(
            403,
            "this form has no valid CSRF token: reload the page and send it again",
            "/console/",
            Some(&s.csrf),
        );
    }
    if parts.as_slice() == ["logout"] {
        p.console.end(&p.registry, &s.hash);
        return redirect("/console/login", Some(session::expired_cookie()));
    }
    pages::act(p, &parts, form, &s.csrf).await
}

async fn login(p: &Arc<Platform>, bodies: &BodyReader, req: Request<Incoming>) -> Response<Body> {
    if !same_origin(req.headers()) {
        return error_page(403, "this login was sent from another site: refused", "/console/login", None);
    }
    let form = match read_form(bodies, req, LOGIN_MAX, Sender::Login).await {
        Ok(f) => f,
        Err(e) => return error_page(400, &e, "/console/login", None),
    };
    let token = form.fields.get("token").map(|t| t.trim()).unwrap_or("");
    if !p.tokens.is_admin(token) {
        // Slows guessing down; the token has 192 random bits anyway.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        return render(401, "login.html", minijinja::context! { error => "this is not the admin token" });
    }
    match p.console.create(&p.registry) {
        Ok(cookie) => redirect("/console/", Some(cookie)),
        Err(e) => error_page(500, &format!("cannot keep the session in the registry: {e}"), "/console/login", None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn forms_from_elsewhere_are_refused_the_consoles_own_pass() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = hyper::HeaderMap::new();
            m.insert("host", "127.0.0.1:8080".parse().unwrap());
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            super::same_origin(&m)
        };
        // Chromium with a strict referrer policy: `Origin: null`, but same-origin by Fetch.
        assert!(h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]));
        assert!(h(&[("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")]));
        assert!(h(&[]), "no browser headers: the CSRF token decides");
        // A sandboxed frame or a data: URL: `Origin: null`, cross-site.
        assert!(!h(&[("origin", "null")]));
        assert!(!h(&[("origin", "null"), ("sec-fetch-site", "cross-site")]));
        assert!(!h(&[("origin", "http://127.0.0.1:8081"), ("sec-fetch-site", "same-site")]));
        assert!(!h(&[("origin", "http://evil.example")]));
        assert!(!h(&[("origin", "http://evil.example"), ("sec-fetch-site", "same-origin")]));
    }

    #[test]
    fn every_template_renders() {
        for name in ["login.html", "list.html", "error.html"] {
            let t = super::templates().get_template(name).unwrap();
            let html = t.render(minijinja::context! { error => "<b>x</b>", csrf => "c" }).unwrap();
            assert!(html.contains("&lt;b&gt;x") && !html.contains("<b>"), "{name} escapes what it shows: {html}");
        }
    }

    /// The stylesheet's rules: (selectors, property, value), `var(--x)` resolved from `:root`.
    fn css_rules() -> Vec<(String, String, String)> {
        let mut rules = Vec::new();
        for block in super::CSS.split('}') {
            let Some((sel, decls)) = block.split_once('{') else { continue };
            // Comments and @media wrappers are not selectors.
            let sel = sel.rsplit("*/").next().unwrap_or("").rsplit('{').next().unwrap_or("").trim();
            let sel = sel.trim_start_matches(|c| c != ':' && c != '.' && !char::is_alphabetic(c)).to_string();
            for d in decls.split(';') {
                if let Some((k, v)) = d.split_once(':') {
                    rules.push((sel.clone(), k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        let vars: HashMap<String, String> = rules
            .iter()
            .filter(|(s, k, _)| s == ":root" && k.starts_with("--"))
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect();
        for r in rules.iter_mut() {
            if let Some(name) = r.2.strip_prefix("var(").and_then(|v| v.strip_suffix(')')) {
                r.2 = vars.get(name).cloned().unwrap_or_else(|| panic!("{} uses an undefined {name}", r.0));
            }
        }
        rules
    }

    fn css(rules: &[(String, String, String)], sel: &str, prop: &str) -> String {
        rules
            .iter()
            .rev()
            .find(|(s, k, _)| s == sel && k == prop)
            .map(|r| r.2.clone())
            .unwrap_or_else(|| panic!("the stylesheet has no `{sel} {{ {prop} }}`"))
    }

    /// WCAG 2's relative luminance of `#rgb` or `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let h = hex.trim_start_matches('#');
        let h: String = if h.len() == 3 { h.chars().flat_map(|c| [c, c]).collect() } else { h.to_string() };
        assert_eq!(h.len(), 6, "not a colour: {hex}");
        let c = |i: usize| {
            let v = u8::from_str_radix(&h[i..i + 2], 16).unwrap() as f64 / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * c(0) + 0.7152 * c(2) + 0.0722 * c(4)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    use std::collections::HashMap;

    #[test]
    fn contrast_is_computed_as_wcag_says() {
        assert!((contrast("#000", "#fff") - 21.0).abs() < 1e-9);
        assert!((contrast("#777", "#fff") - 4.48).abs() < 0.01, "{}", contrast("#777", "#fff"));
    }

    #[test]
    fn text_colours_meet_wcag_aa() {
        let r = css_rules();
        let page = css(&r, "body", "background");
        let at = |sel: &str, prop: &str| css(&r, sel, prop);
        let label = super::chart::hex(super::chart::LABEL);
        // (what, text colour, its background)
        let text = [
            ("body text", at("body", "color"), page.clone()),
            ("muted text", at(":root", "--muted"), page.clone()),
            ("hints", at(".hint", "color"), page.clone()),
            ("placeholders", at("::placeholder", "color"), page.clone()),
            ("links", at("a", "color"), page.clone()),
            ("errors in tables", at(".bad", "color"), page.clone()),
            ("the current tab", at(".tabs a[aria-current]", "color"), page.clone()),
            ("buttons", at("button", "color"), at("button", "background")),
            ("messages", at(".message", "color"), at(".message", "background")),
            ("error messages", at(".error", "color"), at(".error", "background")),
            ("chart summaries", at("figcaption .summary", "color"), page.clone()),
            ("chart axis labels", label.clone(), "#fff".into()),
            ("log lines", at("pre.logs", "color"), at("pre.logs", "background")),
            ("stderr lines", at("pre.logs .stderr", "color"), at("pre.logs", "background")),
            ("fnbox lines", at("pre.logs .fnbox", "color"), at("pre.logs", "background")),
        ];
        for (what, fg, bg) in &text {
            let c = contrast(fg, bg);
            assert!(c >= 4.5, "{what}: {fg} on {bg} has a contrast of {c:.2}, under WCAG AA's 4.5");
        }
        // The focus ring is not text: 3:1 against the page (WCAG 2.2, 1.4.11).
        let ring = at(":focus-visible", "outline");
        let ring = ring.split_whitespace().last().unwrap().to_string();
        let ring = if let Some(v) = ring.strip_prefix("var(") { at(":root", v.trim_end_matches(')')) } else { ring };
        assert!(contrast(&ring, &page) >= 3.0, "focus ring {ring}: {:.2}", contrast(&ring, &page));
        // Every colour the stylesheet defines is one checked above or a line (borders).
        let checked: Vec<String> = text.iter().flat_map(|(_, a, b)| [a.clone(), b.clone()]).chain([ring]).collect();
        let lines = [at(":root", "--line"), at(":root", "--ok")];
        for (sel, k, v) in r.iter().filter(|(_, _, v)| v.starts_with('#')) {
            assert!(
                checked.contains(v) || lines.contains(v) || *v == "#fff",
                "{sel} {{ {k}: {v} }} is a colour no contrast check covers: add it to this test"
            );
        }
    }

    /// Chart series are graphical objects: 3:1 against the chart's white (WCAG 2.2, 1.4.11).
    /// Okabe-Ito's hues, the light ones darkened (its yellow was 1.3:1).
    #[test]
    fn chart_series_colours_stand_out_from_the_background() {
        use super::chart::*;
        for (name, c) in [
            ("green", GREEN),
            ("orange", ORANGE),
            ("red", RED),
            ("blue", BLUE),
            ("sky", SKY),
            ("purple", PURPLE),
            ("yellow", YELLOW),
        ] {
            let c = hex(c);
            assert!(contrast(&c, "#fff") >= 3.0, "{name} {c} on white: {:.2}", contrast(&c, "#fff"));
        }
    }

    /// The console's CSP allows no inline script or style: no template may rely on them.
    #[test]
    fn templates_need_no_inline_script_or_style() {
        let mut all = String::new();
        for name in ["base.html", "login.html", "list.html", "function.html", "error.html", "activity.html"] {
            all.push_str(&super::templates().get_template(name).unwrap().source().to_lowercase());
        }
        let csp = super::SECURITY_HEADERS[0].1;
        assert!(!csp.contains("unsafe-inline") && csp.contains("script-src 'self'"), "{csp}");
        for bad in [" style=", "javascript:", "<style"] {
            assert!(!all.contains(bad), "a template uses {bad}, which the CSP refuses");
        }
        for (i, _) in all.match_indices(" on") {
            let attr: String = all[i + 1..].chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            assert!(!all[i + 1 + attr.len()..].starts_with('='), "an inline event handler: {attr}");
        }
        for (i, _) in all.match_indices("<script") {
            assert!(all[i..].starts_with("<script src=\"/console/static/"), "an inline script: {}", &all[i..i + 40]);
        }
    }
}

//! Python's standard library in a sandbox: each script (tests/programs/python/) does real work
//! with one module family and prints what it saw; the test checks every line.

use crate::common::*;
use crate::harness::*;
use std::process::Command;

/// Runs `script` as `/code/NAME` with `python3` and returns its stdout (asserting success).
fn run_python(kind: &str, test: &str, name: &str, script: &str, extra: &[(&str, &str)]) -> String {
    let s = Scope::new(test);
    let code = Code::new(&[(name, script)]);
    for (file, text) in extra {
        code.write(file, text);
    }
    let path = format!("/code/{name}");
    let out = ok(&code.run(&s, kind, "1024M", 120, &["python3", &path]));
    s.assert_clean();
    out
}

sandbox_tests! {
    fn python_subprocess(kind) {
        let out = run_python(kind, "py-subprocess", "subprocess_test.py", include_str!("python/subprocess_test.py"), &[]);
        assert_output(
            "python subprocess",
            &out,
            "run: 3 out err\n\
             python child: 3 True\n\
             pipe: ['apple', 'fig', 'pear'] 0\n\
             shell: X2\n\
             missing program: 2\n\
             timeout: expired\n\
             signal: -15\n\
             cwd and env: ['/tmp', 'passed']\n",
        );
    }

    fn python_multiprocessing(kind) {
        let out = run_python(kind, "py-mp", "multiprocessing_test.py", include_str!("python/multiprocessing_test.py"), &[]);
        let per_method = |m: &str| {
            format!("{m} process+queue: [(10, True, 45), (100, True, 4950), (1000, True, 499500)] [0, 0, 0]\n")
        };
        assert_output(
            "python multiprocessing",
            &out,
            &format!(
                "pool map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\npool apply: 6\n{}{}{}shared value: 2000\npipe: {{'ping': [1, 2]}}\n",
                per_method("fork"),
                per_method("spawn"),
                per_method("forkserver")
            ),
        );
    }

    fn python_threading(kind) {
        let out = run_python(kind, "py-threads", "threading_test.py", include_str!("python/threading_test.py"), &[]);
        assert_output(
            "python threading",
            &out,
            "counter: 160000\n\
             threads: ['worker-0', 'worker-1', 'worker-2', 'worker-3', 'worker-4', 'worker-5', 'worker-6', 'worker-7']\n\
             alive after join: 0\n\
             executor: [0, 1, 4, 9, 16, 25, 36, 49]\n\
             barrier: [0, 1, 2]\n\
             event: True\n\
             thread-local: main ['unset']\n",
        );
    }

    fn python_asyncio(kind) {
        let out = run_python(kind, "py-asyncio", "asyncio_test.py", include_str!("python/asyncio_test.py"), &[]);
        assert_output(
            "python asyncio",
            &out,
            "echo: [['HELLO', 'CLIENT 0'], ['HELLO', 'CLIENT 1'], ['HELLO', 'CLIENT 2'], ['HELLO', 'CLIENT 3'], ['HELLO', 'CLIENT 4']]\n\
             gather: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] concurrent\n\
             subprocess: from child 4\n\
             wait_for: timed out\n\
             queue: [0, 1, 2]\n\
             executor: 6\n",
        );
    }

    fn python_sqlite3(kind) {
        let out = run_python(kind, "py-sqlite", "sqlite3_test.py", include_str!("python/sqlite3_test.py"), &[]);
        let per_db = |path: &str, file: &str| {
            format!(
                "{path} journal: wal\n\
                 {path} rolled back: NOT NULL constraint failed: items.name\n\
                 {path} rows: [('apple', 4, 2), ('fig', 7, 1), ('pear', 5, 1)]\n\
                 {path} integrity: ok\n\
                 {path} plan uses index: True\n\
                 {path} files: ['{file}']\n"
            )
        };
        assert_output(
            "python sqlite3",
            &out,
            &format!("{}{}cwd: /var/work\nmemory: (1, 42)\n", per_db("/tmp/test.db", "test.db"), per_db("local.db", "local.db")),
        );
    }

    fn python_ssl(kind) {
        let (cert, key) = self_signed_certificate();
        let out = run_python(kind, "py-ssl", "ssl_test.py", include_str!("python/ssl_test.py"), &[("cert.pem", &cert), ("key.pem", &key)]);
        assert_output(
            "python ssl",
            &out,
            "default context: True True\n\
             system CA bundle loaded: True\n\
             explicit CA file: True\n\
             default paths: /usr/lib/ssl/cert.pem /usr/lib/ssl/certs\n\
             handshake: TLSv1.3 localhost\n\
             reply: echo: over tls\n\
             untrusted: self-signed certificate\n\
             server done: True\n",
        );
    }

    fn python_tempfile(kind) {
        let out = run_python(kind, "py-tempfile", "tempfile_test.py", include_str!("python/tempfile_test.py"), &[]);
        assert_output(
            "python tempfile",
            &out,
            "gettempdir: /tmp\n\
             named: /tmp True named contents 0o600\n\
             named removed: True\n\
             directory: True ['a', 'link'] 0o700\n\
             walk: ['a', 'a/b', 'a/b/c.txt', 'link']\n\
             directory removed: True\n\
             mkstemp: /var/work True b'\\x00\\x01mkstemp' 0o600\n\
             mkdtemp: /tmp 0o700\n\
             anonymous: b'anonymous' True\n\
             spooled: False True 25\n",
        );
    }
}

/// A certificate for `localhost` and its key (PEM), made now with the host's `openssl` CLI.
fn self_signed_certificate() -> (String, String) {
    let dir = scratch_root().join(unique("cert"));
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the openssl CLI ({e}): install it with `apt-get install openssl` (.ci/run does)")
        });
    assert!(o.status.success(), "openssl req failed:\n{}", stderr(&o));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let pair = (read("cert.pem"), read("key.pem"));
    let _ = std::fs::remove_dir_all(&dir);
    pair
}

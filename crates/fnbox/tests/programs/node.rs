//! Node's core modules in a sandbox: each script (tests/programs/node/) does real work with one
//! module and prints what it saw; the test checks every line.

use crate::common::*;
use crate::harness::*;

/// Runs `script` as `/code/NAME` with `node` and returns its stdout (asserting success).
fn run_node(kind: &str, test: &str, files: &[(&str, &str)]) -> String {
    let s = Scope::new(test);
    let code = Code::new(files);
    let path = format!("/code/{}", files[0].0);
    let out = ok(&code.run(&s, kind, "1024M", 120, &["node", &path]));
    s.assert_clean();
    out
}

sandbox_tests! {
    fn node_fs(kind) {
        let out = run_node(kind, "node-fs", &[("fs_test.js", include_str!("node/fs_test.js"))]);
        assert_output(
            "node fs",
            &out,
            "read: alpha-beta\n\
             stat: 10 true 644\n\
             renamed: [ 'b.txt' ] false\n\
             symlink: sub/b.txt /tmp/node-fs/sub/b.txt true\n\
             unlinked: false\n\
             missing: ENOENT\n\
             promises read: { x: 1, y: [ 2, 3 ] }\n\
             promises readdir: [ 'p.json:file', 'sub:dir' ]\n\
             promises stat: 17\n\
             file handle: 6 {\"x\":9\n\
             promises unlink: ENOENT\n\
             streams: true\n\
             copy+chmod: 600\n\
             watch: rename watched.txt\n\
             mkdtemp: true\n\
             removed: false false\n",
        );
    }

    fn node_child_process(kind) {
        let out = run_node(
            kind,
            "node-cp",
            &[
                ("child_process_test.js", include_str!("node/child_process_test.js")),
                ("forked_child.js", include_str!("node/forked_child.js")),
            ],
        );
        assert_output(
            "node child_process",
            &out,
            "execSync: HELLO FROM SH\n\
             execFileSync: true true\n\
             execSync failure: 7\n\
             spawnSync: 0 fed through stdin err\n\
             spawn: 5 got spawned input to stderr\n\
             spawn missing: ENOENT\n\
             fork message: {\"from\":\"child\",\"argv\":[\"arg\"],\"connected\":true}\n\
             fork exit: 3\n\
             kill: null SIGTERM\n",
        );
    }

    fn node_worker_threads(kind) {
        let out = run_node(kind, "node-workers", &[("worker_threads_test.js", include_str!("node/worker_threads_test.js"))]);
        assert_output(
            "node worker_threads",
            &out,
            "results: [{\"n\":10,\"sum\":55,\"threadId\":true},{\"n\":1000,\"sum\":500500,\"threadId\":true},{\"n\":100000,\"sum\":5000050000,\"threadId\":true}]\n\
             shared counter: 3\n\
             echo: PING\n\
             worker exit: 0\n",
        );
    }

    fn node_crypto(kind) {
        let out = run_node(kind, "node-crypto", &[("crypto_test.js", include_str!("node/crypto_test.js"))]);
        assert_output(
            "node crypto",
            &out,
            "sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
             hmac: f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8\n\
             randomBytes: 32 true\n\
             randomUUID: true\n\
             rsa sign/verify: true false\n\
             ec sign/verify: true false\n\
             ed25519 sign/verify: true false\n\
             aes-256-gcm: secret message\n\
             pbkdf2: 0c60c80f961f0e71f3a9b524af6012062fe037a6\n\
             async randomFill: null 16\n",
        );
    }
}

//! Command-line programs in a sandbox: busybox sh scripts, git, gcc compiling and running a C
//! program, and the sqlite3 CLI. The scripts are in tests/programs/tools/.

use crate::common::*;
use crate::harness::*;

sandbox_tests! {
    fn busybox_sh_script(kind) {
        require_program("busybox", "busybox");
        let s = Scope::new("busybox");
        let code = Code::new(&[]);
        let out = ok(&code.run(&s, kind, "1024M", 120, &["busybox", "sh", "-c", include_str!("tools/busybox.sh")]));
        assert_output(
            "busybox sh",
            &out,
            "counts: apple=3 pear=2 fig=1 \n\
             lines: 6 unique: 3\n\
             loop total: 55\n\
             find: file a,file b,file c,\n\
             sed: <b>\n\
             tar: 3 entries, file c\n\
             cmp: same\n\
             subshell in /tmp/bb/out;subshell status 3;\n\
             cwd after subshell: /tmp/bb\n\
             awk passwd: /bin/sh\n\
             doc: expanded 5 in bb\n\
             fd3: through fd 3\n\
             1 2 3\n\
             trap ran\n\
             case: linux\n\
             group lines: 2\n\
             gzip roundtrip md5: e6427336\n\
             words md5: e6427336\n",
        );
        s.assert_clean();
    }

    fn git_branch_and_merge(kind) {
        require_program("git", "git");
        let s = Scope::new("git");
        let code = Code::new(&[("git.sh", include_str!("tools/git.sh"))]);
        let out = ok(&code.run(&s, kind, "1024M", 120, &["sh", "/code/git.sh"]));
        let (log, rest) = out.split_once("--- status\n").unwrap_or_else(|| panic!("no status section:\n{out}"));
        let log_lines: Vec<&str> = log.lines().skip(1).collect();
        let subjects: Vec<&str> = log_lines.iter().map(|l| l.split_once(' ').map_or("", |(_, m)| m)).collect();
        assert_eq!(subjects, ["merge feature", "main: add c", "feature: extend a", "first: two files"], "{out}");
        for line in &log_lines {
            let hash = line.split(' ').next().unwrap();
            assert!(hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()), "not an abbreviated hash: {line}\n{out}");
        }
        assert_output(
            "git status and checks",
            rest,
            " M b.txt\n\
             ?? d.txt\n\
             --- checks\n\
             branches: feature main \n\
             merge parents: 2\n\
             commits: 4\n\
             a.txt: one three \n\
             after stash: ?? d.txt \n\
             fsck: ok\n\
             clone: merge feature a.txt b.txt c.txt \n",
        );
        s.assert_clean();
    }

    fn gcc_compiles_and_runs_a_c_program(kind) {
        require_program("gcc", "gcc libc6-dev");
        let s = Scope::new("gcc");
        let code = Code::new(&[("prog.c", include_str!("tools/prog.c")), ("gcc.sh", include_str!("tools/gcc.sh"))]);
        // gcc is CPU-bound: 2G brings 1.12 vCPU (the default 1024M brings 0.56).
        let out = ok(&code.run(&s, kind, "2G", 180, &["sh", "/code/gcc.sh"]));
        assert_output(
            "gcc",
            &out,
            "malloc sum: 499999500000\n\
             qsort: fn gcc sandbox compiled\n\
             libm: 1.414214\n\
             child exit: 7\n\
             child wrote: written by child 1\n\
             out.txt: argc=2 first=hello\n\
             binary: 177ELF\n",
        );
        s.assert_clean();
    }

    fn sqlite3_cli(kind) {
        require_program("sqlite3", "sqlite3");
        let s = Scope::new("sqlite-cli");
        let code = Code::new(&[("sqlite.sh", include_str!("tools/sqlite.sh"))]);
        let out = ok(&code.run(&s, kind, "1024M", 120, &["sh", "/code/sqlite.sh"]));
        let (queries, dump) = out.split_once("--- dump\n").unwrap_or_else(|| panic!("no dump section:\n{out}"));
        let (queries, error) = queries.split_once("--- error\n").unwrap();
        assert_output(
            "sqlite3 queries",
            queries,
            "--- totals\n\
             ann 2 15.0\n\
             cy 1 7.0\n\
             bob 2 4.25\n\
             --- aggregate\n\
             5|26.25|10.5|ann\n\
             --- csv\n\
             id,customer\n\
             1,ann\n\
             3,ann\n\
             4,cy\n",
        );
        // The wording around the message and the exit status vary between sqlite versions.
        assert!(error.contains("NOT NULL constraint failed: orders.customer") && error.contains("exit "), "{error}");
        assert!(dump.starts_with("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n") && dump.ends_with("COMMIT;\n"), "{dump}");
        for line in [
            "CREATE TABLE orders (id integer primary key, customer text not null, amount real);",
            "INSERT INTO orders VALUES(2,'bob',3.0);",
            "INSERT INTO orders VALUES(3,'ann',4.5);",
            "INSERT INTO orders VALUES(5,'bob',1.25);",
            "CREATE VIEW totals as select customer, count(*) as n, sum(amount) as total from orders group by customer;",
        ] {
            assert!(dump.lines().any(|l| l == line), "missing from .dump: {line}\n{dump}");
        }
        assert_eq!(dump.lines().filter(|l| l.starts_with("INSERT INTO orders VALUES(")).count(), 5, "{dump}");
        s.assert_clean();
    }
}

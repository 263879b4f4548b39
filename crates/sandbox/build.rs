//! Generates the syscall table (`OUT_DIR/syscall_table.rs`) from `src/syscalls/table.tsv`,
//! the one source of truth for which syscalls each sandbox allows, emulates or refuses.

use std::fmt::Write as _;

fn route(token: &str, line: usize) -> String {
    match token {
        "allow" => "Route::Allow".into(),
        "notify" => "Route::Notify".into(),
        "enosys" => "Route::Enosys".into(),
        "deny" => "Route::Deny".into(),
        t if t.starts_with("rule:") => format!("Route::Rule({:?})", &t[5..]),
        t => panic!("table.tsv line {line}: unknown route '{t}'"),
    }
}

fn main() {
    let src = "src/syscalls/table.tsv";
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).expect("read table.tsv");
    let mut out = String::from("pub static TABLE: &[Syscall] = &[\n");
    let mut last: i64 = -1;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        assert!(f.len() == 6, "table.tsv line {}: expected 6 tab-separated fields", i + 1);
        let nr: i64 = f[0].parse().expect("syscall number");
        assert!(nr > last, "table.tsv line {}: numbers must increase", i + 1);
        last = nr;
        let class = match f[2] {
            "native" => "Class::Native",
            "emulated" => "Class::Emulated",
            "partial" => "Class::Partial",
            "unsupported" => "Class::Unsupported",
            c => panic!("table.tsv line {}: unknown class '{c}'", i + 1),
        };
        writeln!(
            out,
            "    Syscall {{ nr: {nr}, name: {:?}, class: {class}, v2: {}, docker: {}, note: {:?} }},",
            f[1],
            route(f[3], i + 1),
            route(f[4], i + 1),
            f[5]
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("syscall_table.rs");
    std::fs::write(dest, out).unwrap();
}

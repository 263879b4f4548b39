# Run in a sandbox by crates/fnbox/tests/programs/python.rs, which checks every line it prints.
import os
import sqlite3

for path in ["/tmp/test.db", "local.db"]:
    con = sqlite3.connect(path)
    print(path, "journal:", con.execute("pragma journal_mode=wal").fetchone()[0])
    con.execute("create table items (id integer primary key, name text not null, qty int)")
    con.executemany("insert into items (name, qty) values (?, ?)", [("apple", 3), ("pear", 5), ("fig", 7), ("apple", 1)])
    con.commit()
    try:
        with con:
            con.execute("insert into items (name, qty) values ('kiwi', 9)")
            con.execute("insert into items (name, qty) values (null, 1)")
    except sqlite3.IntegrityError as e:
        print(path, "rolled back:", e)
    con.close()
    con = sqlite3.connect(path)
    rows = con.execute("select name, sum(qty), count(*) from items group by name order by name").fetchall()
    print(path, "rows:", rows)
    print(path, "integrity:", con.execute("pragma integrity_check").fetchone()[0])
    con.execute("create index by_name on items(name)")
    print(path, "plan uses index:", "by_name" in str(con.execute("explain query plan select * from items where name = 'fig'").fetchall()))
    con.close()
    print(path, "files:", sorted(f for f in os.listdir(os.path.dirname(os.path.abspath(path))) if f.startswith(os.path.basename(path))))
print("cwd:", os.getcwd())
mem = sqlite3.connect(":memory:")
print("memory:", mem.execute("select sqlite_version() > '3', 6 * 7").fetchone())

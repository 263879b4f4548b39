# Run in a sandbox by crates/fnbox/tests/programs/tools.rs, which checks what it prints.
set -e
sqlite3 shop.db <<'SQL'
create table orders (id integer primary key, customer text not null, amount real);
insert into orders (customer, amount) values ('ann', 10.5), ('bob', 3), ('ann', 4.5), ('cy', 7);
create view totals as select customer, count(*) as n, sum(amount) as total from orders group by customer;
SQL
sqlite3 shop.db "insert into orders (customer, amount) values ('bob', 1.25);"
echo "--- totals"
sqlite3 -separator ' ' shop.db "select customer, n, total from totals order by total desc;"
echo "--- aggregate"
sqlite3 shop.db "select count(*), printf('%.2f', sum(amount)), max(amount), min(customer) from orders;"
echo "--- csv"
sqlite3 -csv -header shop.db "select id, customer from orders where amount > 4 order by id;"
echo "--- error"
sqlite3 shop.db "insert into orders (customer) values (null);" 2>&1 || echo "exit $?"
echo "--- dump"
sqlite3 shop.db .dump

-- Read-write: one transaction places an order with two lines at the current menu prices,
-- sets its total and reads it back (5 statements, like pgbench's tpcb-like). The new
-- order's uuid is derived from two random numbers, so both protocols (-M simple and
-- -M extended/prepared) pass it the same way and no \gset is needed.
\set a random(1, 2000000000)
\set b random(1, 2000000000)
\set i1 random(1, 1000)
\set i2 random(1, 1000)
\set t random(1, 40)
\set q random(1, 4)
BEGIN;
INSERT INTO orders (order_id, branch_id, table_no) VALUES (md5(:a::text || '-' || :b::text)::uuid, 'b0000000-0000-4000-8000-000000000001', :t);
INSERT INTO order_items (order_id, line_no, item_id, quantity, unit_price) SELECT md5(:a::text || '-' || :b::text)::uuid, l.line_no, m.item_id, l.qty, m.price FROM (VALUES (1, :i1::int, :q::int), (2, :i2::int, 1)) l(line_no, k, qty) JOIN menu_items m ON m.item_id = ('00000000-0000-4000-8000-' || lpad(l.k::text, 12, '0'))::uuid;
UPDATE orders SET total = (SELECT sum(quantity * unit_price) FROM order_items WHERE order_id = md5(:a::text || '-' || :b::text)::uuid) WHERE order_id = md5(:a::text || '-' || :b::text)::uuid;
SELECT order_id, status, total FROM orders WHERE order_id = md5(:a::text || '-' || :b::text)::uuid;
COMMIT;

-- One point read by primary key on orders: the same statement bench/http.sh sends to
-- POST /v1/sql (there with the uuid as a bound parameter).
\set o random(1, 10000)
SELECT order_id, status, table_no, total, placed_at FROM orders WHERE order_id = ('00000000-0000-4000-9000-' || lpad(:o::text, 12, '0'))::uuid;

-- Bench data for bench/gateway.sh and bench/http.sh, run once as the tenant's own
-- read-write role (directly on PostgreSQL, like examples/restaurant/seed.sql): it never
-- names a tenant; tenant_id comes from the column default, RLS scopes everything.
--
-- Rows get deterministic uuids so that pgbench scripts can pick a random existing row
-- by primary key without a lookup:
--   bench branch    b0000000-0000-4000-8000-000000000001
--   menu item k     00000000-0000-4000-8000-<k, 12 digits>   k = 1..1000
--   order k         00000000-0000-4000-9000-<k, 12 digits>   k = 1..10000 (3 lines each)
-- Safe to run again (does nothing once the bench branch exists).
BEGIN;
INSERT INTO branches (branch_id, name, city, country)
SELECT 'b0000000-0000-4000-8000-000000000001', 'Bench branch', 'Benchville', 'US'
WHERE NOT EXISTS (SELECT 1 FROM branches WHERE branch_id = 'b0000000-0000-4000-8000-000000000001');

INSERT INTO menu_items (item_id, branch_id, name, category, price)
SELECT ('00000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid,
       'b0000000-0000-4000-8000-000000000001', 'Bench dish ' || k,
       (ARRAY['starters', 'mains', 'desserts', 'drinks'])[1 + k % 4], 3 + (k % 40) * 0.5
FROM generate_series(1, 1000) k
ON CONFLICT DO NOTHING;

INSERT INTO orders (order_id, branch_id, placed_at, status, table_no, total)
SELECT ('00000000-0000-4000-9000-' || lpad(k::text, 12, '0'))::uuid,
       'b0000000-0000-4000-8000-000000000001', now() - k * interval '1 minute',
       CASE WHEN k % 10 = 0 THEN 'open' ELSE 'paid' END, 1 + k % 40, 0
FROM generate_series(1, 10000) k
ON CONFLICT DO NOTHING;

INSERT INTO order_items (order_id, line_no, item_id, quantity, unit_price)
SELECT ('00000000-0000-4000-9000-' || lpad(k::text, 12, '0'))::uuid, l,
       ('00000000-0000-4000-8000-' || lpad((1 + (k * 7 + l * 131) % 1000)::text, 12, '0'))::uuid,
       1 + (k + l) % 3, 3 + ((k * 7 + l * 131) % 40) * 0.5
FROM generate_series(1, 10000) k, generate_series(1, 3) l
ON CONFLICT DO NOTHING;

UPDATE orders o SET total = s.total
FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM order_items GROUP BY order_id) s
WHERE o.order_id = s.order_id AND o.branch_id = 'b0000000-0000-4000-8000-000000000001' AND o.total = 0;
COMMIT;

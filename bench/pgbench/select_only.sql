-- Select-only: two point reads by primary key, one on orders and one on menu_items, of
-- random existing rows of the tenant (see prepare.sql for the ids). RLS adds the tenant.
\set o random(1, 10000)
\set m random(1, 1000)
SELECT order_id, status, table_no, total, placed_at FROM orders WHERE order_id = ('00000000-0000-4000-9000-' || lpad(:o::text, 12, '0'))::uuid;
SELECT name, category, price, is_available FROM menu_items WHERE item_id = ('00000000-0000-4000-8000-' || lpad(:m::text, 12, '0'))::uuid;

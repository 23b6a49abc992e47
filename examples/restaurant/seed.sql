-- Demo data for the restaurant example: 3 branches, 25 menu items per branch,
-- 200 orders per branch over the last 30 days with 1-5 lines each.
--
-- Runs as the tenant's own read-write role, which may only SELECT, INSERT, UPDATE
-- and DELETE. It never names a tenant: tenant_id is filled by its default and
-- row-level security shows the role only its own rows. Plain SQL, no psql
-- meta-commands: it runs with `psql -f seed.sql` and as one simple-query batch.
--
-- Safe to run again: everything is inserted by one statement that does nothing
-- once the tenant has a branch. Contents are reproducible (setseed); the uuids
-- and the dates, which are relative to today, are not.

BEGIN;

SELECT setseed(0.42);

WITH guard AS (
    SELECT NOT EXISTS (SELECT 1 FROM branches) AS tenant_is_empty
),
branch_list (name, city, country, opened_on, price_factor) AS (
    VALUES
        ('Bella Tavola Navigli',       'Milan',    'IT', date '2015-04-18', 1.10),
        ('Bella Tavola Trastevere',    'Rome',     'IT', date '2018-09-07', 1.00),
        ('Bella Tavola Santo Spirito', 'Florence', 'IT', date '2021-05-21', 0.95)
),
menu (category, name, price) AS (
    VALUES
        ('starters', 'Bruschetta al pomodoro',         6.50),
        ('starters', 'Burrata con pomodorini',        11.00),
        ('starters', 'Carpaccio di manzo',            13.50),
        ('starters', 'Arancini siciliani',             8.00),
        ('starters', 'Vitello tonnato',               12.50),
        ('starters', 'Minestrone della casa',          7.50),
        ('mains',    'Spaghetti alla carbonara',      13.00),
        ('mains',    'Tagliatelle al ragù',           14.00),
        ('mains',    'Risotto ai funghi porcini',     16.50),
        ('mains',    'Lasagne alla bolognese',        14.50),
        ('mains',    'Pizza Margherita',               9.50),
        ('mains',    'Pizza Diavola',                 11.50),
        ('mains',    'Saltimbocca alla romana',       19.00),
        ('mains',    'Branzino al forno',             22.00),
        ('mains',    'Gnocchi al pesto',              13.50),
        ('desserts', 'Tiramisù',                       7.00),
        ('desserts', 'Panna cotta ai frutti di bosco', 6.50),
        ('desserts', 'Cannoli siciliani',              6.00),
        ('desserts', 'Affogato al caffè',              5.50),
        ('desserts', 'Torta della nonna',              6.50),
        ('drinks',   'Espresso',                       2.00),
        ('drinks',   'Acqua minerale 0.75 l',          3.50),
        ('drinks',   'Limonata artigianale',           4.50),
        ('drinks',   'Chianti Classico (calice)',      7.00),
        ('drinks',   'Birra Moretti 0.4 l',            5.50)
),
customers (names) AS (
    SELECT ARRAY['Giulia Rossi', 'Marco Bianchi', 'Sofia Romano', 'Luca Colombo', 'Chiara Ricci',
                 'Matteo Marino', 'Francesca Greco', 'Alessandro Bruno', 'Elena Gallo', 'Davide Conti',
                 'Martina Costa', 'Simone Giordano', 'Anna Mancini', 'Paolo Lombardi', 'Sara Moretti']
),
notes (texts) AS (
    SELECT ARRAY['no onions', 'extra spicy', 'gluten free please', 'sauce on the side', 'to share',
                 'well done', 'no cheese', 'child portion']
),
new_branches AS (
    INSERT INTO branches (name, city, country, opened_on)
    SELECT b.name, b.city, b.country, b.opened_on
    FROM branch_list b, guard
    WHERE guard.tenant_is_empty
    ORDER BY b.opened_on
    RETURNING branch_id, name
),
new_items AS (
    INSERT INTO menu_items (branch_id, name, category, price, is_available)
    SELECT nb.branch_id, m.name, m.category, round(m.price * b.price_factor * 2) / 2, random() > 0.06
    FROM new_branches nb
    JOIN branch_list b ON b.name = nb.name
    CROSS JOIN menu m
    ORDER BY b.opened_on, m.category, m.name
    RETURNING item_id, branch_id, name, category, price
),
numbered_items AS (
    SELECT item_id, branch_id, category, price,
           row_number() OVER (PARTITION BY branch_id ORDER BY name) AS pick_no
    FROM new_items
),
order_plan AS (
    SELECT gen_random_uuid() AS order_id,
           nb.branch_id,
           (current_date - (1 + floor(random() * 30))::int) + time '11:30' + random() * interval '11 hours' AS placed_at,
           CASE WHEN random() < 0.04 THEN 'cancelled' ELSE 'paid' END AS status,
           random() < 0.7 AS dine_in,
           1 + floor(random() * 30)::int AS table_pick,
           1 + floor(random() * 15)::int AS customer_pick,
           1 + floor(random() * 5)::int AS line_count
    FROM new_branches nb
    CROSS JOIN generate_series(1, 200) AS n
    ORDER BY nb.name, n
),
-- Runs although nothing reads it: PostgreSQL executes every data-modifying CTE,
-- and the foreign keys of order_items are checked at the end of the statement.
new_orders AS (
    INSERT INTO orders (order_id, branch_id, placed_at, status, table_no, customer_name)
    SELECT o.order_id, o.branch_id, o.placed_at, o.status,
           CASE WHEN o.dine_in THEN o.table_pick END,
           CASE WHEN NOT o.dine_in THEN c.names[o.customer_pick] END
    FROM order_plan o, customers c
),
line_plan AS (
    SELECT o.order_id, o.branch_id, line_no,
           1 + floor(random() * (SELECT count(*) FROM menu))::int AS item_pick,
           1 + (random() < 0.25)::int + (random() < 0.08)::int AS quantity,
           CASE WHEN random() < 0.1 THEN 1 + floor(random() * 8)::int END AS note_pick
    FROM order_plan o
    CROSS JOIN generate_series(1, o.line_count) AS line_no
)
INSERT INTO order_items (order_id, line_no, item_id, quantity, unit_price, note)
SELECT l.order_id, l.line_no, i.item_id, l.quantity, i.price,
       CASE WHEN i.category = 'mains' THEN n.texts[l.note_pick] END
FROM line_plan l
JOIN numbered_items i ON i.branch_id = l.branch_id AND i.pick_no = l.item_pick
CROSS JOIN notes n;

-- Order totals are the sum of their lines.
UPDATE orders o
SET total = s.total
FROM (
    SELECT tenant_id, order_id, sum(quantity * unit_price) AS total
    FROM order_items
    GROUP BY tenant_id, order_id
) s
WHERE o.tenant_id = s.tenant_id
  AND o.order_id = s.order_id
  AND o.total IS DISTINCT FROM s.total;

COMMIT;

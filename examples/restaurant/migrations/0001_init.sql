-- Restaurant point of sale: branches, their menus, orders and order lines.
--
-- Written to tenantgate's table contract (DESIGN I3), so the same file can be
-- applied to the shared pool schema, to a tenant's own schema and to a tenant's
-- own database:
--   * every table starts with the tenant key, filled in by its default;
--   * every primary key and unique constraint leads with tenant_id;
--   * every foreign key carries tenant_id on both sides, so no row can point at
--     another tenant's row;
--   * ids are uuids, not sequences, so ids reveal nothing about other tenants;
--   * names are unqualified: tenantgate sets search_path to each target.
-- Row-level security, the tenant_isolation policy and grants are applied by
-- tenantgate after the migration; this file does not mention them.

CREATE TABLE branches (
    tenant_id  text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
    branch_id  uuid NOT NULL DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    city       text NOT NULL,
    country    text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    opened_on  date NOT NULL DEFAULT current_date,
    PRIMARY KEY (tenant_id, branch_id),
    UNIQUE (tenant_id, name)
);

COMMENT ON TABLE branches IS 'Restaurants (branches) of the tenant''s business. One row per physical location.';
COMMENT ON COLUMN branches.tenant_id IS 'Tenant key; filled automatically. Row-level security limits every query to the current tenant, so queries never need to filter on it.';
COMMENT ON COLUMN branches.branch_id IS 'Identifier of the branch.';
COMMENT ON COLUMN branches.name IS 'Display name of the branch, unique within the tenant, e.g. "Bella Tavola Navigli".';
COMMENT ON COLUMN branches.city IS 'City where the branch is located.';
COMMENT ON COLUMN branches.country IS 'Country of the branch as an ISO 3166-1 alpha-2 code, e.g. IT.';
COMMENT ON COLUMN branches.opened_on IS 'Date the branch opened.';

CREATE TABLE menu_items (
    tenant_id    text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
    item_id      uuid NOT NULL DEFAULT gen_random_uuid(),
    branch_id    uuid NOT NULL,
    name         text NOT NULL,
    category     text NOT NULL CHECK (category IN ('starters', 'mains', 'desserts', 'drinks')),
    price        numeric(10,2) NOT NULL CHECK (price >= 0),
    is_available boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant_id, item_id),
    UNIQUE (tenant_id, branch_id, name),
    FOREIGN KEY (tenant_id, branch_id) REFERENCES branches (tenant_id, branch_id)
);

CREATE INDEX menu_items_by_category ON menu_items (tenant_id, category);

COMMENT ON TABLE menu_items IS 'Dishes and drinks on the menu of one branch, with their current price. Each branch has its own menu and prices.';
COMMENT ON COLUMN menu_items.tenant_id IS 'Tenant key; filled automatically. Row-level security limits every query to the current tenant.';
COMMENT ON COLUMN menu_items.item_id IS 'Identifier of the menu item.';
COMMENT ON COLUMN menu_items.branch_id IS 'Branch whose menu lists this item (branches.branch_id).';
COMMENT ON COLUMN menu_items.name IS 'Name of the dish or drink as printed on the menu.';
COMMENT ON COLUMN menu_items.category IS 'Menu section: starters, mains, desserts or drinks.';
COMMENT ON COLUMN menu_items.price IS 'Current price of one portion, in the branch''s currency, tax included.';
COMMENT ON COLUMN menu_items.is_available IS 'False while the item is off the menu (sold out, seasonal); old orders keep referring to it.';

CREATE TABLE orders (
    tenant_id     text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
    order_id      uuid NOT NULL DEFAULT gen_random_uuid(),
    branch_id     uuid NOT NULL,
    placed_at     timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'cancelled')),
    table_no      integer CHECK (table_no > 0),
    customer_name text,
    total         numeric(12,2) NOT NULL DEFAULT 0 CHECK (total >= 0),
    PRIMARY KEY (tenant_id, order_id),
    FOREIGN KEY (tenant_id, branch_id) REFERENCES branches (tenant_id, branch_id)
);

CREATE INDEX orders_by_time ON orders (tenant_id, placed_at);
CREATE INDEX orders_by_branch_time ON orders (tenant_id, branch_id, placed_at);

COMMENT ON TABLE orders IS 'Customer orders (checks) taken at a branch. The amount is in total; the ordered dishes are in order_items.';
COMMENT ON COLUMN orders.tenant_id IS 'Tenant key; filled automatically. Row-level security limits every query to the current tenant.';
COMMENT ON COLUMN orders.order_id IS 'Identifier of the order.';
COMMENT ON COLUMN orders.branch_id IS 'Branch where the order was placed (branches.branch_id).';
COMMENT ON COLUMN orders.placed_at IS 'When the order was placed.';
COMMENT ON COLUMN orders.status IS 'open (not yet paid), paid, or cancelled. Revenue counts paid orders only.';
COMMENT ON COLUMN orders.table_no IS 'Table number for dine-in orders; NULL for takeaway.';
COMMENT ON COLUMN orders.customer_name IS 'Name given by the customer, usually for takeaway orders; often NULL.';
COMMENT ON COLUMN orders.total IS 'Order amount: the sum of quantity * unit_price over its order_items, tip excluded.';

CREATE TABLE order_items (
    tenant_id  text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
    order_id   uuid NOT NULL,
    line_no    integer NOT NULL CHECK (line_no > 0),
    item_id    uuid NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10,2) NOT NULL CHECK (unit_price >= 0),
    note       text,
    PRIMARY KEY (tenant_id, order_id, line_no),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, order_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, item_id) REFERENCES menu_items (tenant_id, item_id)
);

CREATE INDEX order_items_by_item ON order_items (tenant_id, item_id);

COMMENT ON TABLE order_items IS 'Lines of an order: which menu item, how many, at what price.';
COMMENT ON COLUMN order_items.tenant_id IS 'Tenant key; filled automatically. Row-level security limits every query to the current tenant.';
COMMENT ON COLUMN order_items.order_id IS 'Order this line belongs to (orders.order_id).';
COMMENT ON COLUMN order_items.line_no IS 'Position of the line within its order, starting at 1.';
COMMENT ON COLUMN order_items.item_id IS 'Menu item ordered (menu_items.item_id).';
COMMENT ON COLUMN order_items.quantity IS 'Number of portions ordered.';
COMMENT ON COLUMN order_items.unit_price IS 'Price of one portion when the order was placed (menu prices change later). Line amount = quantity * unit_price.';
COMMENT ON COLUMN order_items.note IS 'Free-text kitchen note, e.g. "no onions"; usually NULL.';

/* A file that breaks the contract in many ways.
   Each statement starts on a known line. */
CREATE TABLE orders (
    id        bigserial PRIMARY KEY,
    tenant_id text NOT NULL DEFAULT tenantgate.current_tenant()
);

CREATE TABLE lines (
    tenant_id text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
    line_id   uuid,
    order_id  bigint REFERENCES orders (id),
    PRIMARY KEY (tenant_id, line_id)
);
CREATE UNIQUE INDEX lines_by_order ON lines (order_id, line_id);

GRANT SELECT ON orders TO PUBLIC;
CREATE TABLE app.audit (note text);

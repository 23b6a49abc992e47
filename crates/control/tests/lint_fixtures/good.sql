-- A file that keeps the table contract everywhere: zero findings.
CREATE TABLE customers (
    tenant_id   text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
    customer_id uuid NOT NULL DEFAULT gen_random_uuid(),
    email       text NOT NULL,
    PRIMARY KEY (tenant_id, customer_id),
    UNIQUE (tenant_id, email)
);

CREATE TABLE invoices (
    tenant_id   text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
    invoice_id  uuid NOT NULL DEFAULT gen_random_uuid(),
    customer_id uuid NOT NULL,
    amount      numeric(12,2) NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (tenant_id, invoice_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, customer_id) ON DELETE CASCADE
);

CREATE INDEX invoices_by_customer ON invoices (tenant_id, customer_id);
CREATE UNIQUE INDEX customers_email_lower ON customers (tenant_id, lower(email));
CREATE VIEW big_invoices WITH (security_invoker = true) AS
    SELECT * FROM invoices WHERE amount > 1000;
CREATE TYPE invoice_state AS ENUM ('open', 'paid');
ALTER TABLE invoices ADD COLUMN state invoice_state NOT NULL DEFAULT 'open';
COMMENT ON TABLE invoices IS 'One invoice per customer purchase';

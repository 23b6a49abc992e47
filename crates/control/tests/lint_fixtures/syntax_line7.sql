-- statement 1
CREATE TABLE a (
    tenant_id text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant()
);
COMMENT ON TABLE a IS 'first';
-- statement 3 has a typo on line 7
CRATE INDEX a_idx ON a (tenant_id);
SELECT 1;

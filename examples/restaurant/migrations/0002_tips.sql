-- Tips are recorded per order, separately from the order total.
ALTER TABLE orders ADD COLUMN tip numeric(12,2) NOT NULL DEFAULT 0;

COMMENT ON COLUMN orders.tip IS 'Tip left by the customer, in the branch''s currency; not part of total. Amount paid = total + tip.';

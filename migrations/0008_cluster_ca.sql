-- A CA certificate file (PEM path) trusted for a cluster besides the OS store: a gateway
-- behind a company's own certificate authority. NULL: the OS store alone.
ALTER TABLE clusters ADD COLUMN ca_file TEXT;

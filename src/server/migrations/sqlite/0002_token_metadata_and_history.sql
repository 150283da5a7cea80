-- Token metadata (Gafaelfawr's database half): what listing, naming,
-- parent/child links and expiry bookkeeping need. Identity details (email,
-- full name, uid, gid, groups) and the secret stay sealed in token_data.
CREATE TABLE tokens (
    token_key  TEXT    NOT NULL PRIMARY KEY,
    username   TEXT    NOT NULL,
    token_type TEXT    NOT NULL,
    token_name TEXT,
    scopes     TEXT    NOT NULL,  -- sorted, space-separated
    service    TEXT,
    created    INTEGER NOT NULL,
    last_used  INTEGER,
    expires    INTEGER,
    -- SET NULL, not CASCADE: deletion of children is done by the service,
    -- which records history for each; a NULL parent on a child type is an
    -- orphan for the audit to find.
    parent     TEXT REFERENCES tokens (token_key) ON DELETE SET NULL
) STRICT;
CREATE UNIQUE INDEX tokens_name_per_user ON tokens (username, token_name) WHERE token_name IS NOT NULL;
CREATE INDEX tokens_by_user ON tokens (username, token_type);
CREATE INDEX tokens_by_parent ON tokens (parent);
CREATE INDEX tokens_by_expiry ON tokens (expires) WHERE expires IS NOT NULL;

CREATE TABLE token_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    token_key      TEXT    NOT NULL,
    username       TEXT    NOT NULL,
    token_type     TEXT    NOT NULL,
    token_name     TEXT,
    parent         TEXT,
    scopes         TEXT    NOT NULL,
    service        TEXT,
    expires        INTEGER,
    actor          TEXT,
    action         TEXT    NOT NULL,
    old_token_name TEXT,
    old_scopes     TEXT,
    old_expires    INTEGER,
    ip_address     TEXT,
    -- The address as 16 bytes (IPv4 mapped into IPv6), so that a CIDR
    -- filter is a range comparison.
    ip_bytes       BLOB,
    event_time     INTEGER NOT NULL
) STRICT;
CREATE INDEX token_history_by_time ON token_history (event_time, id);
CREATE INDEX token_history_by_key ON token_history (token_key);
CREATE INDEX token_history_by_user ON token_history (username, event_time);

-- The distributed store's durable half (Gafaelfawr's database), with one
-- addition: each token's sealed data, so that a wiped Redis loses nothing.
-- Redis holds the same sealed data with a TTL, the short-lived
-- authorization codes and the pending CLI logins.

-- Token data, sealed: only the public key (and the expiry, which the
-- metadata shows anyway) is in the clear.
CREATE TABLE token_data (
    token_key  TEXT   NOT NULL PRIMARY KEY,
    key_id     TEXT   NOT NULL,
    nonce      BYTEA  NOT NULL,
    ciphertext BYTEA  NOT NULL,
    expires    BIGINT
);
CREATE INDEX token_data_by_expiry ON token_data (expires) WHERE expires IS NOT NULL;

CREATE TABLE tokens (
    token_key  TEXT   NOT NULL PRIMARY KEY,
    username   TEXT   NOT NULL,
    token_type TEXT   NOT NULL,
    token_name TEXT,
    scopes     TEXT   NOT NULL,  -- sorted, space-separated
    service    TEXT,
    created    BIGINT NOT NULL,
    last_used  BIGINT,
    expires    BIGINT,
    -- SET NULL, not CASCADE: the service deletes children itself, with
    -- history for each; a NULL parent on a child type is an orphan.
    parent     TEXT REFERENCES tokens (token_key) ON DELETE SET NULL
);
CREATE UNIQUE INDEX tokens_name_per_user ON tokens (username, token_name) WHERE token_name IS NOT NULL;
CREATE INDEX tokens_by_user ON tokens (username, token_type);
CREATE INDEX tokens_by_parent ON tokens (parent);
CREATE INDEX tokens_by_expiry ON tokens (expires) WHERE expires IS NOT NULL;

CREATE TABLE token_history (
    id             BIGSERIAL PRIMARY KEY,
    token_key      TEXT   NOT NULL,
    username       TEXT   NOT NULL,
    token_type     TEXT   NOT NULL,
    token_name     TEXT,
    parent         TEXT,
    scopes         TEXT   NOT NULL,
    service        TEXT,
    expires        BIGINT,
    actor          TEXT,
    action         TEXT   NOT NULL,
    old_token_name TEXT,
    old_scopes     TEXT,
    old_expires    BIGINT,
    ip_address     TEXT,
    -- The address as 16 bytes (IPv4 mapped into IPv6), so that a CIDR
    -- filter is a range comparison.
    ip_bytes       BYTEA,
    event_time     BIGINT NOT NULL
);
CREATE INDEX token_history_by_time ON token_history (event_time, id);
CREATE INDEX token_history_by_key ON token_history (token_key);
CREATE INDEX token_history_by_user ON token_history (username, event_time);

CREATE TABLE oidc_clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    secret_sha256 BYTEA,             -- NULL for a public client
    redirect_uris TEXT    NOT NULL,  -- JSON array
    public        BOOLEAN NOT NULL,
    name          TEXT,
    created       BIGINT  NOT NULL
);

-- The client and OpenID scopes behind each access token issued to a client.
CREATE TABLE oidc_grants (
    token_key TEXT   NOT NULL PRIMARY KEY REFERENCES tokens (token_key) ON DELETE CASCADE,
    client_id TEXT   NOT NULL,
    scopes    TEXT   NOT NULL,
    auth_time BIGINT NOT NULL
);

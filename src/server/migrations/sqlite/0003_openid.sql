-- OpenID Connect: registered clients, authorization codes, the access
-- tokens issued to clients, and pending CLI logins. Codes and CLI logins
-- are kept by a hash of their secret part only.
CREATE TABLE oidc_clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    secret_sha256 BLOB,              -- NULL for a public client
    redirect_uris TEXT    NOT NULL,  -- JSON array
    public        INTEGER NOT NULL,
    name          TEXT,
    created       INTEGER NOT NULL
) STRICT;

CREATE TABLE oidc_codes (
    code_sha256    BLOB    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    session_key    TEXT    NOT NULL REFERENCES tokens (token_key) ON DELETE CASCADE,
    scopes         TEXT    NOT NULL,  -- the OpenID scopes granted, space-separated
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      INTEGER NOT NULL,
    expires        INTEGER NOT NULL,
    redeemed       INTEGER NOT NULL DEFAULT 0,
    -- The access token the first redemption issued, for revoking on replay.
    issued_key     TEXT
) STRICT;
CREATE INDEX oidc_codes_by_expiry ON oidc_codes (expires);

CREATE TABLE oidc_grants (
    token_key TEXT NOT NULL PRIMARY KEY REFERENCES tokens (token_key) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scopes    TEXT NOT NULL,
    auth_time INTEGER NOT NULL
) STRICT;

CREATE TABLE pending_logins (
    login_id         TEXT    NOT NULL PRIMARY KEY,
    poll_sha256      BLOB    NOT NULL,
    user_code        TEXT    NOT NULL,
    created          INTEGER NOT NULL,
    expires          INTEGER NOT NULL,
    -- The browser session that approved the login; the CLI's token is made
    -- from it when the CLI next polls.
    approved_session TEXT REFERENCES tokens (token_key) ON DELETE CASCADE
) STRICT;
CREATE INDEX pending_logins_by_expiry ON pending_logins (expires);

-- Token data, sealed: only the public key is in the clear.
CREATE TABLE token_data (
    token_key  TEXT NOT NULL PRIMARY KEY,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL
) STRICT;

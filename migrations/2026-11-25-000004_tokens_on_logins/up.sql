-- A login issues exactly one token, so the token now lives on the login's own row: one insert
-- per login instead of two, and a token names its row (wxl_<login id>_<secret>, the form
-- Laravel Sanctum uses), so a check reads by primary key and no index of random hashes is
-- rewritten on every login. Only the SHA-256 of the secret is stored, as before.
-- Tokens issued before this stay in login_tokens and keep working until they expire.
ALTER TABLE logins ADD COLUMN token_hash CHAR(64);
ALTER TABLE logins ADD COLUMN token_expires_at TIMESTAMP;
ALTER TABLE logins ADD COLUMN token_revoked_at TIMESTAMP;

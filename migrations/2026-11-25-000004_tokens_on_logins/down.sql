-- Tokens issued since the up migration cannot move to login_tokens (its hashes are of whole
-- tokens, these of their secrets): their users log in again.
ALTER TABLE logins DROP COLUMN token_revoked_at;
ALTER TABLE logins DROP COLUMN token_expires_at;
ALTER TABLE logins DROP COLUMN token_hash;

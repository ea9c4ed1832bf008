-- Back to the openid UNIQUE on users itself (it fails, and changes nothing, should two users
-- share an openid).
PRAGMA foreign_keys = OFF;
BEGIN;
DROP TABLE IF EXISTS user_openids_progress;
DROP TABLE IF EXISTS user_openids;
DROP TABLE IF EXISTS users_rebuilt;
CREATE TABLE users_rebuilt (
    id INTEGER PRIMARY KEY NOT NULL,
    openid VARCHAR(128) NOT NULL UNIQUE,
    unionid VARCHAR(128),
    session_key VARCHAR(255) NOT NULL,
    nickname VARCHAR(255),
    avatar_url VARCHAR(512),
    disabled_at TIMESTAMP,
    disabled_reason TEXT,
    login_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP NOT NULL,
    last_login_id BIGINT
);
INSERT INTO users_rebuilt (id, openid, unionid, session_key, nickname, avatar_url, disabled_at,
                           disabled_reason, login_count, created_at, updated_at, last_login_at,
                           last_login_id)
SELECT id, openid, unionid, session_key, nickname, avatar_url, disabled_at, disabled_reason,
       login_count, created_at, updated_at, last_login_at, last_login_id
FROM users;
DROP TABLE users;
ALTER TABLE users_rebuilt RENAME TO users;

CREATE INDEX users_created_at ON users (created_at);
CREATE INDEX users_last_login_at ON users (last_login_at);
CREATE INDEX users_unionid ON users (unionid) WHERE unionid IS NOT NULL;
CREATE INDEX users_disabled_at ON users (disabled_at) WHERE disabled_at IS NOT NULL;
CREATE INDEX users_disabled_created_at ON users (created_at) WHERE disabled_at IS NOT NULL;
CREATE INDEX users_disabled_last_login_at ON users (last_login_at) WHERE disabled_at IS NOT NULL;

CREATE TRIGGER users_nickname_fts_update AFTER UPDATE OF nickname ON users
WHEN old.nickname IS NOT new.nickname
 AND old.id <= (SELECT indexed_through FROM users_nickname_fts_progress) BEGIN
    INSERT INTO users_nickname_fts (users_nickname_fts, rowid, nickname)
    VALUES ('delete', old.id, old.nickname);
    INSERT INTO users_nickname_fts (rowid, nickname) VALUES (new.id, new.nickname);
END;
CREATE TRIGGER users_nickname_fts_delete AFTER DELETE ON users
WHEN old.id <= (SELECT indexed_through FROM users_nickname_fts_progress) BEGIN
    INSERT INTO users_nickname_fts (users_nickname_fts, rowid, nickname)
    VALUES ('delete', old.id, old.nickname);
END;
CREATE TRIGGER users_nickname_pairs_update AFTER UPDATE OF nickname ON users
WHEN old.nickname IS NOT new.nickname
 AND old.id <= (SELECT pairs_indexed_through FROM users_nickname_fts_progress) BEGIN
    INSERT OR IGNORE INTO users_nickname_pairs_pending (id, indexed_as)
    VALUES (old.id, old.nickname);
END;
CREATE TRIGGER users_nickname_pairs_delete AFTER DELETE ON users
WHEN old.id <= (SELECT pairs_indexed_through FROM users_nickname_fts_progress) BEGIN
    INSERT OR IGNORE INTO users_nickname_pairs_pending (id, indexed_as)
    VALUES (old.id, old.nickname);
END;
COMMIT;
PRAGMA foreign_keys = ON;

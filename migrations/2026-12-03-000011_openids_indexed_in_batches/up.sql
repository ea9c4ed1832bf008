-- A new user's openid used to go into users' UNIQUE index as the login was committed. Openids
-- come in no order, so nearly every new user changed a page of that index of its own, and
-- every commit wrote a dozen such pages whole to the WAL (and the upkeep thread copied them
-- again): the login writer's CPU per new user read 10-14 µs with openids in no order against
-- 5-6 µs with openids in order (examples/writer_micro).
--
-- Openids now go into user_openids, the lookup by openid, in batches: the login writer keeps
-- the users it created since in memory and moves them over a slice at a time, in openid order,
-- so a page of the index takes many new users at once (see src/db/openid_index.rs). Users with
-- an id above indexed_through may not be in user_openids yet: a lookup by openid from
-- anywhere else reads those users too (a short range of the newest rows).
--
-- users is rebuilt without the UNIQUE (SQLite cannot drop a column's constraint): same columns,
-- ids, indexes and triggers. user_openids' primary key keeps openids unique.
-- WITHOUT ROWID is SQLite's: on PostgreSQL user_openids is an ordinary table with that primary
-- key.
-- Foreign keys off: dropping the old users would otherwise delete (and refuse, since logins
-- refer to them) its rows first. The script is its own transaction, and may run again after a
-- stop between its commit and diesel's record of it: the lookup tables are made anew.
PRAGMA foreign_keys = OFF;
BEGIN;
DROP TABLE IF EXISTS user_openids_progress;
DROP TABLE IF EXISTS user_openids;
DROP TABLE IF EXISTS users_rebuilt;
CREATE TABLE users_rebuilt (
    id INTEGER PRIMARY KEY NOT NULL,
    openid VARCHAR(128) NOT NULL,
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

-- No foreign key on user_id: checking it read a user's row for every openid moved over, in
-- openid order, so nearly each from a page of its own. Only the login writer adds rows here,
-- of users it has just stored, and users are never deleted.
CREATE TABLE user_openids (
    openid VARCHAR(128) PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO user_openids (openid, user_id) SELECT openid, id FROM users ORDER BY openid;

CREATE TABLE user_openids_progress (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    indexed_through BIGINT NOT NULL
);
INSERT INTO user_openids_progress (id, indexed_through)
SELECT 1, COALESCE(MAX(id), 0) FROM users;
COMMIT;
PRAGMA foreign_keys = ON;

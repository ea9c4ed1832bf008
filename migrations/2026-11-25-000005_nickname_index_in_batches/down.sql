-- Back to a trigger per insert, with everyone indexed first.
INSERT INTO users_nickname_fts (rowid, nickname)
SELECT id, nickname FROM users
WHERE id > (SELECT indexed_through FROM users_nickname_fts_progress) AND nickname IS NOT NULL;

DROP TRIGGER users_nickname_fts_update;
DROP TRIGGER users_nickname_fts_delete;
DROP TABLE users_nickname_fts_progress;

CREATE TRIGGER users_nickname_fts_insert AFTER INSERT ON users
WHEN new.nickname IS NOT NULL BEGIN
    INSERT INTO users_nickname_fts (rowid, nickname) VALUES (new.id, new.nickname);
END;

CREATE TRIGGER users_nickname_fts_delete AFTER DELETE ON users
WHEN old.nickname IS NOT NULL BEGIN
    INSERT INTO users_nickname_fts (users_nickname_fts, rowid, nickname)
    VALUES ('delete', old.id, old.nickname);
END;

CREATE TRIGGER users_nickname_fts_update AFTER UPDATE OF nickname ON users
WHEN old.nickname IS NOT new.nickname BEGIN
    INSERT INTO users_nickname_fts (users_nickname_fts, rowid, nickname)
    SELECT 'delete', old.id, old.nickname WHERE old.nickname IS NOT NULL;
    INSERT INTO users_nickname_fts (rowid, nickname)
    SELECT new.id, new.nickname WHERE new.nickname IS NOT NULL;
END;

-- Nickname substring search at a million users: a LIKE '%term%' reads every row, so an FTS5
-- index of the nicknames' trigrams answers it instead (for terms of three characters or
-- more). SQLite-only; PostgreSQL's counterpart is a pg_trgm GIN index on users.nickname.
-- The index holds no copy of the text (external content) and triggers keep it in step.
CREATE VIRTUAL TABLE users_nickname_fts USING fts5(
    nickname, content = 'users', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO users_nickname_fts (users_nickname_fts) VALUES ('rebuild');

CREATE TRIGGER users_nickname_fts_insert AFTER INSERT ON users
WHEN new.nickname IS NOT NULL BEGIN
    INSERT INTO users_nickname_fts (rowid, nickname) VALUES (new.id, new.nickname);
END;

CREATE TRIGGER users_nickname_fts_delete AFTER DELETE ON users
WHEN old.nickname IS NOT NULL BEGIN
    INSERT INTO users_nickname_fts (users_nickname_fts, rowid, nickname)
    VALUES ('delete', old.id, old.nickname);
END;

-- Logins rewrite the row without changing the nickname: only a real change touches the index.
CREATE TRIGGER users_nickname_fts_update AFTER UPDATE OF nickname ON users
WHEN old.nickname IS NOT new.nickname BEGIN
    INSERT INTO users_nickname_fts (users_nickname_fts, rowid, nickname)
    SELECT 'delete', old.id, old.nickname WHERE old.nickname IS NOT NULL;
    INSERT INTO users_nickname_fts (rowid, nickname)
    SELECT new.id, new.nickname WHERE new.nickname IS NOT NULL;
END;

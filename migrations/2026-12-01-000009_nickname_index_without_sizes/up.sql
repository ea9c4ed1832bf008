-- The trigram index kept each nickname's size in tokens (FTS5's `_docsize` table, a row per
-- user), which only ranking reads, and searches here filter without ranking. Writing that
-- row was 3.0k of the 4.4k instructions the login writer spent indexing a new user
-- (callgrind). Rebuilt without it, with everyone indexed (under a second at a million
-- users, once: 0.6 s against 1.3 s with sizes, measured with SQLite 3.40); the batches go on
-- from the newest user.
DROP TABLE users_nickname_fts;
CREATE VIRTUAL TABLE users_nickname_fts USING fts5(
    nickname, content = 'users', content_rowid = 'id', tokenize = 'trigram', columnsize = 0
);
INSERT INTO users_nickname_fts (users_nickname_fts) VALUES ('rebuild');
UPDATE users_nickname_fts_progress SET indexed_through = (SELECT COALESCE(MAX(id), 0) FROM users);

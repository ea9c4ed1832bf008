DROP TABLE users_nickname_fts;
CREATE VIRTUAL TABLE users_nickname_fts USING fts5(
    nickname, content = 'users', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO users_nickname_fts (users_nickname_fts) VALUES ('rebuild');
UPDATE users_nickname_fts_progress SET indexed_through = (SELECT COALESCE(MAX(id), 0) FROM users);

DROP TRIGGER users_nickname_fts_update;
DROP TRIGGER users_nickname_fts_delete;
DROP TRIGGER users_nickname_fts_insert;
DROP TABLE users_nickname_fts;

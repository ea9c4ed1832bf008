-- Nickname terms of one or two characters. The trigram index cannot answer them, so such a
-- term read every user (a rare two-character term at a million users: 90-170 ms), and
-- two-character Chinese names are common. This index holds each nickname with a separator
-- (U+001F) after every character, "\x1fa\x1fb\x1fc\x1f", so its trigrams include every
-- character ("\x1fb\x1f") and every pair of neighbours ("a\x1fb"): a term of one or two
-- characters is one trigram. A single trigram needs no positions (detail=none), no stored
-- copy of the text (contentless) and no sizes (columnsize=0): the least the login writer
-- can pay to index a new user.
CREATE VIRTUAL TABLE users_nickname_pairs USING fts5(
    chars, content = '', columnsize = 0, detail = 'none', tokenize = 'trigram'
);

-- The writer fills it in batches from `pairs_indexed_through` (src/db/nickname_index.rs),
-- starting from nobody: at a million users that is a few seconds in the background, and
-- searches read the users it has not reached yet until then.
ALTER TABLE users_nickname_fts_progress
    ADD COLUMN pairs_indexed_through BIGINT NOT NULL DEFAULT 0;

-- Users renamed or deleted once indexed, with the nickname the index holds for them. The
-- separated text is built by a function the server gives its connections, which a trigger
-- cannot count on (the sqlite3 shell has no such function), and taking a row out of a
-- contentless index needs the text it went in with; so the triggers leave the change here
-- for the next batch, and searches read these users directly meanwhile. The first change
-- is the one kept: the index still holds the nickname from before it.
CREATE TABLE users_nickname_pairs_pending (
    id INTEGER PRIMARY KEY NOT NULL,
    indexed_as TEXT
);

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

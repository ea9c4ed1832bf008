-- A returning user's login went into the index of logins by user at that user's place: a
-- page of the index picked at random by every login, which the commit wrote to the WAL and
-- the next checkpoint copied into the database. (Bench, returning-users: the login writer
-- spent 20% less CPU a login without it, the checkpoints a third less.) Instead each login
-- names the same user's login before it, and the user names its latest: a user's logins
-- are read newest first along that chain, and a login only appends. No foreign key on
-- previous_login_id: checking one when a login row is deleted would need the index back.
ALTER TABLE logins ADD COLUMN previous_login_id BIGINT;
ALTER TABLE users ADD COLUMN last_login_id BIGINT;

-- The chains of the logins already stored, read through the index before it goes.
UPDATE logins SET previous_login_id = (
    SELECT MAX(p.id) FROM logins p WHERE p.user_id = logins.user_id AND p.id < logins.id
);
UPDATE users SET last_login_id = (SELECT MAX(l.id) FROM logins l WHERE l.user_id = users.id);

DROP INDEX logins_user_id;

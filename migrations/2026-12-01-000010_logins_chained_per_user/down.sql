CREATE INDEX logins_user_id ON logins (user_id, id);
ALTER TABLE users DROP COLUMN last_login_id;
ALTER TABLE logins DROP COLUMN previous_login_id;

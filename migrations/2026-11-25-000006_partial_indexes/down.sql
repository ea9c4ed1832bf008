DROP INDEX users_unionid;
CREATE INDEX users_unionid ON users (unionid);
DROP INDEX users_disabled_at;
CREATE INDEX users_disabled_at ON users (disabled_at);

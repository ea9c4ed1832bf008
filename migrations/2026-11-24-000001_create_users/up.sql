-- Kept to SQL that PostgreSQL also accepts, apart from the INTEGER PRIMARY KEY that makes
-- SQLite assign ids (BIGSERIAL / IDENTITY on PostgreSQL).
CREATE TABLE users (
    id INTEGER PRIMARY KEY NOT NULL,
    openid VARCHAR(128) NOT NULL UNIQUE,
    unionid VARCHAR(128),
    session_key VARCHAR(255) NOT NULL,
    nickname VARCHAR(255),
    avatar_url VARCHAR(512),
    disabled_at TIMESTAMP,
    disabled_reason TEXT,
    login_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP NOT NULL
);
CREATE INDEX users_unionid ON users (unionid);
CREATE INDEX users_created_at ON users (created_at);
CREATE INDEX users_last_login_at ON users (last_login_at);
CREATE INDEX users_disabled_at ON users (disabled_at);

-- Login tokens are stored only as the SHA-256 of the token the client holds.
CREATE TABLE login_tokens (
    id INTEGER PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    token_hash CHAR(64) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX login_tokens_user_id ON login_tokens (user_id);

-- One row per successful login, for the console.
CREATE TABLE logins (
    id INTEGER PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    logged_in_at TIMESTAMP NOT NULL,
    ip VARCHAR(64),
    user_agent VARCHAR(512)
);
CREATE INDEX logins_user_id ON logins (user_id, id);
CREATE INDEX logins_logged_in_at ON logins (logged_in_at);

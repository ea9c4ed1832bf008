CREATE TABLE admins (
    id INTEGER PRIMARY KEY NOT NULL,
    username VARCHAR(64) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_sign_in_at TIMESTAMP
);

-- Console sessions, kept server-side so that signing out or an idle timeout really ends
-- them; the cookie holds only the key, and the table only the key's SHA-256.
CREATE TABLE admin_sessions (
    key_hash CHAR(64) PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX admin_sessions_expires_at ON admin_sessions (expires_at);

-- Failed sign-ins, counted per username and per IP for the brute-force limit.
CREATE TABLE admin_sign_in_failures (
    id INTEGER PRIMARY KEY NOT NULL,
    username VARCHAR(64) NOT NULL,
    ip VARCHAR(64) NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX admin_sign_in_failures_username ON admin_sign_in_failures (username, failed_at);
CREATE INDEX admin_sign_in_failures_ip ON admin_sign_in_failures (ip, failed_at);

-- Every admin action. The admin's name is copied so the record outlives a rename.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY NOT NULL,
    admin_id BIGINT REFERENCES admins (id),
    admin_username VARCHAR(64) NOT NULL,
    action VARCHAR(64) NOT NULL,
    user_id BIGINT REFERENCES users (id),
    reason TEXT,
    ip VARCHAR(64),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_admin_id ON audit_log (admin_id, id);
CREATE INDEX audit_log_user_id ON audit_log (user_id, id);

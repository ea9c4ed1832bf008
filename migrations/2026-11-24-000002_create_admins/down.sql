DROP TABLE audit_log;
DROP TABLE admin_sign_in_failures;
DROP TABLE admin_sessions;
DROP TABLE admins;

DROP TABLE logins;
DROP TABLE login_tokens;
DROP TABLE users;

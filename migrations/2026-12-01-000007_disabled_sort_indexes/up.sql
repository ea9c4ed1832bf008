-- The list of active users, a page deep, at a million users: checking `disabled_at` on each
-- skipped row read half the table (page 25,000: 66 ms). The console now skips along the
-- sort index alone and subtracts the disabled users it passed, which it counts on these.
-- They hold only disabled users, so a login that creates or updates an active user adds
-- no index entry. The list of disabled users is sorted on them too.
CREATE INDEX users_disabled_created_at ON users (created_at) WHERE disabled_at IS NOT NULL;
CREATE INDEX users_disabled_last_login_at ON users (last_login_at) WHERE disabled_at IS NOT NULL;

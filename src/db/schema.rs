// @generated shape of `diesel print-schema`, with ids as BigInt so the same models fit
// PostgreSQL's BIGINT later (SQLite integers are 64-bit either way).

diesel::table! {
    users (id) {
        id -> BigInt,
        openid -> Text,
        unionid -> Nullable<Text>,
        session_key -> Text,
        nickname -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        disabled_at -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        login_count -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_login_at -> Timestamp,
        last_login_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    logins (id) {
        id -> BigInt,
        user_id -> BigInt,
        logged_in_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        token_hash -> Nullable<Text>,
        token_expires_at -> Nullable<Timestamp>,
        token_revoked_at -> Nullable<Timestamp>,
        previous_login_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    admins (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        must_change_password -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_sign_in_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    admin_sessions (key_hash) {
        key_hash -> Text,
        state -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    admin_sign_in_failures (id) {
        id -> BigInt,
        username -> Text,
        ip -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        admin_id -> Nullable<BigInt>,
        admin_username -> Text,
        action -> Text,
        user_id -> Nullable<BigInt>,
        reason -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// The lookup by openid, filled in batches (migration 000011, `db::openid_index`).
    user_openids (openid) {
        openid -> Text,
        user_id -> BigInt,
    }
}

diesel::table! {
    /// Users up to `indexed_through` are all in `user_openids`.
    user_openids_progress (id) {
        id -> BigInt,
        indexed_through -> BigInt,
    }
}

diesel::joinable!(login_tokens -> users (user_id));
diesel::joinable!(audit_log -> users (user_id));
diesel::joinable!(audit_log -> admins (admin_id));
diesel::joinable!(logins -> users (user_id));
diesel::joinable!(user_openids -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    login_tokens,
    logins,
    admins,
    admin_sessions,
    admin_sign_in_failures,
    audit_log,
    user_openids,
    user_openids_progress,
);

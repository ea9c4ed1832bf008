//! The console's text in Simplified Chinese and English: one catalog, one struct, so a
//! message missing in one language is a compile error, and templates stay single.

use actix_web::http::header;
use actix_web::HttpRequest;

/// A console language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

/// Cookie that keeps the language chosen with the switch.
pub const LANG_COOKIE: &str = "wxlogin_lang";

impl Lang {
    /// The language's code: `zh` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The `lang` attribute of the page.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// Parses `zh` or `en`.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language, which the header's switch offers.
    pub fn other(self) -> Self {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The catalog for this language.
    pub fn messages(self) -> &'static Messages {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }

    /// The language for a request: the switch's cookie if set, else the best match in
    /// `Accept-Language`, else Chinese.
    pub fn of_request(req: &HttpRequest) -> Self {
        if let Some(lang) = req
            .cookie(LANG_COOKIE)
            .and_then(|c| Lang::from_code(c.value()))
        {
            return lang;
        }
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::from_accept_language)
            .unwrap_or(Lang::Zh)
    }

    /// The preferred supported language of an `Accept-Language` header value.
    pub fn from_accept_language(value: &str) -> Option<Self> {
        let mut best: Option<(f32, Lang)> = None;
        for item in value.split(',') {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::Zh
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, lang)| lang)
    }
}

/// Every piece of console text.
#[allow(missing_docs)]
pub struct Messages {
    pub lang: Lang,
    pub language_name: &'static str,
    pub app_name: &'static str,
    pub nav_dashboard: &'static str,
    pub nav_users: &'static str,
    pub nav_audit: &'static str,
    pub nav_password: &'static str,
    pub sign_out: &'static str,
    pub signed_in_as: &'static str,
    pub times_in: &'static str,

    pub sign_in_title: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub sign_in_button: &'static str,
    pub bad_credentials: &'static str,
    pub too_many_attempts: &'static str,
    pub signed_out: &'static str,
    pub session_expired: &'static str,

    pub dashboard_title: &'static str,
    pub stat_users: &'static str,
    pub stat_active: &'static str,
    pub stat_disabled: &'static str,
    pub stat_new_today: &'static str,
    pub stat_new_7_days: &'static str,
    pub stat_logins_24h: &'static str,
    pub chart_title: &'static str,
    pub chart_alt: &'static str,

    pub users_title: &'static str,
    pub search_placeholder: &'static str,
    pub search_button: &'static str,
    pub status_label: &'static str,
    pub status_all: &'static str,
    pub status_active: &'static str,
    pub status_disabled: &'static str,
    pub sort_label: &'static str,
    pub sort_created_desc: &'static str,
    pub sort_created_asc: &'static str,
    pub sort_last_login_desc: &'static str,
    pub sort_last_login_asc: &'static str,
    pub per_page_label: &'static str,
    pub col_avatar: &'static str,
    pub col_nickname: &'static str,
    pub col_openid: &'static str,
    pub col_unionid: &'static str,
    pub col_status: &'static str,
    pub col_created: &'static str,
    pub col_last_login: &'static str,
    pub col_logins: &'static str,
    pub no_nickname: &'static str,
    pub no_users_title: &'static str,
    pub no_users_hint: &'static str,
    pub no_match: &'static str,
    pub clear_search: &'static str,
    pub prev_page: &'static str,
    pub next_page: &'static str,
    pub page_label: &'static str,

    pub user_title: &'static str,
    pub back_to_users: &'static str,
    pub field_id: &'static str,
    pub field_updated: &'static str,
    pub field_disabled_at: &'static str,
    pub field_disabled_reason: &'static str,
    pub recent_logins: &'static str,
    pub col_time: &'static str,
    pub col_ip: &'static str,
    pub col_user_agent: &'static str,
    pub no_logins: &'static str,
    pub user_actions: &'static str,
    pub no_user_actions: &'static str,
    pub disable_title: &'static str,
    pub disable_hint: &'static str,
    pub reason_label: &'static str,
    pub disable_button: &'static str,
    pub enable_title: &'static str,
    pub enable_hint: &'static str,
    pub enable_button: &'static str,
    pub reason_required: &'static str,
    pub reason_too_long: &'static str,
    pub flash_disabled: &'static str,
    pub flash_enabled: &'static str,
    pub flash_already: &'static str,

    pub audit_title: &'static str,
    pub filter_admin: &'static str,
    pub filter_user: &'static str,
    pub filter_any: &'static str,
    pub filter_button: &'static str,
    pub col_when: &'static str,
    pub col_admin: &'static str,
    pub col_action: &'static str,
    pub col_user: &'static str,
    pub col_reason: &'static str,
    pub no_audit: &'static str,
    pub older: &'static str,
    pub action_sign_in: &'static str,
    pub action_sign_out: &'static str,
    pub action_change_password: &'static str,
    pub action_disable_user: &'static str,
    pub action_enable_user: &'static str,

    pub password_title: &'static str,
    pub current_password: &'static str,
    pub new_password: &'static str,
    pub repeat_password: &'static str,
    pub change_password_button: &'static str,
    pub must_change_password: &'static str,
    pub wrong_current_password: &'static str,
    pub passwords_differ: &'static str,
    pub password_too_short: &'static str,
    pub password_unchanged: &'static str,
    pub flash_password_changed: &'static str,

    pub error_title: &'static str,
    pub error_not_found: &'static str,
    pub error_csrf: &'static str,
    pub error_bad_request: &'static str,
    pub error_internal: &'static str,
    pub back_home: &'static str,
}

impl Messages {
    /// "Try again in N minutes."
    pub fn wait_minutes(&self, minutes: i64) -> String {
        match self.lang {
            Lang::Zh => format!("{}请在 {minutes} 分钟后重试。", self.too_many_attempts),
            Lang::En => format!(
                "{} Try again in {minutes} minute{}.",
                self.too_many_attempts,
                if minutes == 1 { "" } else { "s" }
            ),
        }
    }

    /// "N users".
    pub fn user_count(&self, n: i64) -> String {
        match self.lang {
            Lang::Zh => format!("共 {n} 位用户"),
            Lang::En => format!("{n} user{}", if n == 1 { "" } else { "s" }),
        }
    }

    /// The count of a search that matched more users than it counts.
    pub fn user_count_more(&self, n: i64) -> String {
        match self.lang {
            Lang::Zh => format!("超过 {n} 位用户，请缩小搜索范围"),
            Lang::En => format!("More than {n} users; narrow the search to see them all"),
        }
    }

    /// "Page X of Y".
    pub fn page_of(&self, page: i64, pages: i64) -> String {
        match self.lang {
            Lang::Zh => format!("第 {page} / {pages} 页"),
            Lang::En => format!("Page {page} of {pages}"),
        }
    }

    /// The readable name of an audit action.
    pub fn action_name(&self, action: &str) -> &'static str {
        match action {
            "sign_in" => self.action_sign_in,
            "sign_out" => self.action_sign_out,
            "change_password" => self.action_change_password,
            "disable_user" => self.action_disable_user,
            "enable_user" => self.action_enable_user,
            _ => "?",
        }
    }
}

/// English.
pub static EN: Messages = Messages {
    lang: Lang::En,
    language_name: "English",
    app_name: "wxlogin console",
    nav_dashboard: "Dashboard",
    nav_users: "Users",
    nav_audit: "Audit log",
    nav_password: "Password",
    sign_out: "Sign out",
    signed_in_as: "Signed in as",
    times_in: "Times in",

    sign_in_title: "Sign in",
    username: "Username",
    password: "Password",
    sign_in_button: "Sign in",
    bad_credentials: "Wrong username or password.",
    too_many_attempts: "Too many failed sign-ins.",
    signed_out: "You have signed out.",
    session_expired: "Please sign in to continue.",

    dashboard_title: "Dashboard",
    stat_users: "Users",
    stat_active: "Active",
    stat_disabled: "Disabled",
    stat_new_today: "New today",
    stat_new_7_days: "New in 7 days",
    stat_logins_24h: "Logins in 24 hours",
    chart_title: "Daily sign-ups, last 30 days",
    chart_alt: "Bar chart of new users per day",

    users_title: "Users",
    search_placeholder: "Nickname, openid or unionid",
    search_button: "Search",
    status_label: "Status",
    status_all: "All",
    status_active: "Active",
    status_disabled: "Disabled",
    sort_label: "Sort",
    sort_created_desc: "Newest first",
    sort_created_asc: "Oldest first",
    sort_last_login_desc: "Recent login first",
    sort_last_login_asc: "Least recent login first",
    per_page_label: "Per page",
    col_avatar: "Avatar",
    col_nickname: "Nickname",
    col_openid: "openid",
    col_unionid: "unionid",
    col_status: "Status",
    col_created: "Created",
    col_last_login: "Last login",
    col_logins: "Logins",
    no_nickname: "(no nickname)",
    no_users_title: "No users yet",
    no_users_hint: "Users appear here after their first login from the mini-program. To try it, log one in with curl:",
    no_match: "No users match these filters.",
    clear_search: "Clear filters",
    prev_page: "← Previous",
    next_page: "Next →",
    page_label: "Page",

    user_title: "User",
    back_to_users: "← All users",
    field_id: "ID",
    field_updated: "Updated",
    field_disabled_at: "Disabled at",
    field_disabled_reason: "Reason",
    recent_logins: "Last 50 logins",
    col_time: "Time",
    col_ip: "IP",
    col_user_agent: "User agent",
    no_logins: "No logins recorded.",
    user_actions: "Admin actions on this user",
    no_user_actions: "No admin has acted on this user.",
    disable_title: "Disable this user",
    disable_hint: "The user is signed out everywhere at once and cannot log in until enabled again.",
    reason_label: "Reason (required)",
    disable_button: "Disable user",
    enable_title: "Enable this user",
    enable_hint: "The user can log in again. Tokens revoked when disabling stay revoked.",
    enable_button: "Enable user",
    reason_required: "Give a reason to disable a user.",
    reason_too_long: "The reason must be at most 500 characters.",
    flash_disabled: "User disabled; all their tokens are revoked.",
    flash_enabled: "User enabled.",
    flash_already: "Nothing changed: the user was already in that state.",

    audit_title: "Audit log",
    filter_admin: "Admin",
    filter_user: "User ID",
    filter_any: "Any",
    filter_button: "Filter",
    col_when: "When",
    col_admin: "Admin",
    col_action: "Action",
    col_user: "User",
    col_reason: "Reason",
    no_audit: "No admin actions match.",
    older: "Older entries →",
    action_sign_in: "Signed in",
    action_sign_out: "Signed out",
    action_change_password: "Changed password",
    action_disable_user: "Disabled user",
    action_enable_user: "Enabled user",

    password_title: "Change password",
    current_password: "Current password",
    new_password: "New password (at least 10 characters)",
    repeat_password: "Repeat the new password",
    change_password_button: "Change password",
    must_change_password: "This password was generated for you. Choose your own before you continue.",
    wrong_current_password: "The current password is wrong.",
    passwords_differ: "The two new passwords differ.",
    password_too_short: "The new password needs at least 10 characters (and at most 256 bytes).",
    password_unchanged: "Choose a password different from the current one.",
    flash_password_changed: "Your password has been changed.",

    error_title: "Something went wrong",
    error_not_found: "There is no such page.",
    error_csrf: "This form has expired or did not come from this console. Go back, reload the page and try again.",
    error_bad_request: "The address has a value that is not valid here.",
    error_internal: "An unexpected error occurred. It has been logged.",
    back_home: "Back to the dashboard",
};

/// Simplified Chinese.
pub static ZH: Messages = Messages {
    lang: Lang::Zh,
    language_name: "中文",
    app_name: "wxlogin 管理后台",
    nav_dashboard: "概览",
    nav_users: "用户",
    nav_audit: "操作日志",
    nav_password: "修改密码",
    sign_out: "退出登录",
    signed_in_as: "当前管理员",
    times_in: "时区",

    sign_in_title: "登录",
    username: "用户名",
    password: "密码",
    sign_in_button: "登录",
    bad_credentials: "用户名或密码错误。",
    too_many_attempts: "登录失败次数过多。",
    signed_out: "已退出登录。",
    session_expired: "请先登录。",

    dashboard_title: "概览",
    stat_users: "用户总数",
    stat_active: "正常",
    stat_disabled: "已禁用",
    stat_new_today: "今日新增",
    stat_new_7_days: "近 7 天新增",
    stat_logins_24h: "24 小时登录次数",
    chart_title: "近 30 天每日新增用户",
    chart_alt: "每日新增用户柱状图",

    users_title: "用户",
    search_placeholder: "昵称、openid 或 unionid",
    search_button: "搜索",
    status_label: "状态",
    status_all: "全部",
    status_active: "正常",
    status_disabled: "已禁用",
    sort_label: "排序",
    sort_created_desc: "最新注册",
    sort_created_asc: "最早注册",
    sort_last_login_desc: "最近登录",
    sort_last_login_asc: "最久未登录",
    per_page_label: "每页",
    col_avatar: "头像",
    col_nickname: "昵称",
    col_openid: "openid",
    col_unionid: "unionid",
    col_status: "状态",
    col_created: "注册时间",
    col_last_login: "最近登录",
    col_logins: "登录次数",
    no_nickname: "(未设置昵称)",
    no_users_title: "还没有用户",
    no_users_hint: "用户在小程序中首次登录后会出现在这里。想试一试,可以用 curl 登录一位用户:",
    no_match: "没有符合条件的用户。",
    clear_search: "清除筛选",
    prev_page: "← 上一页",
    next_page: "下一页 →",
    page_label: "页码",

    user_title: "用户",
    back_to_users: "← 全部用户",
    field_id: "ID",
    field_updated: "更新时间",
    field_disabled_at: "禁用时间",
    field_disabled_reason: "禁用原因",
    recent_logins: "最近 50 次登录",
    col_time: "时间",
    col_ip: "IP",
    col_user_agent: "客户端",
    no_logins: "暂无登录记录。",
    user_actions: "针对该用户的管理操作",
    no_user_actions: "尚无管理员操作过该用户。",
    disable_title: "禁用该用户",
    disable_hint: "该用户将立即在所有设备上退出,重新启用前无法登录。",
    reason_label: "原因(必填)",
    disable_button: "禁用用户",
    enable_title: "启用该用户",
    enable_hint: "该用户可以重新登录。禁用时作废的登录凭证不会恢复。",
    enable_button: "启用用户",
    reason_required: "禁用用户必须填写原因。",
    reason_too_long: "原因最多 500 个字符。",
    flash_disabled: "已禁用该用户,其全部登录凭证已作废。",
    flash_enabled: "已启用该用户。",
    flash_already: "未做更改:该用户已处于该状态。",

    audit_title: "操作日志",
    filter_admin: "管理员",
    filter_user: "用户 ID",
    filter_any: "全部",
    filter_button: "筛选",
    col_when: "时间",
    col_admin: "管理员",
    col_action: "操作",
    col_user: "用户",
    col_reason: "原因",
    no_audit: "没有符合条件的操作记录。",
    older: "更早的记录 →",
    action_sign_in: "登录",
    action_sign_out: "退出登录",
    action_change_password: "修改密码",
    action_disable_user: "禁用用户",
    action_enable_user: "启用用户",

    password_title: "修改密码",
    current_password: "当前密码",
    new_password: "新密码(至少 10 个字符)",
    repeat_password: "再次输入新密码",
    change_password_button: "修改密码",
    must_change_password: "当前密码由系统生成,请先设置您自己的密码。",
    wrong_current_password: "当前密码错误。",
    passwords_differ: "两次输入的新密码不一致。",
    password_too_short: "新密码至少需要 10 个字符(且不超过 256 字节)。",
    password_unchanged: "新密码不能与当前密码相同。",
    flash_password_changed: "密码已修改。",

    error_title: "出错了",
    error_not_found: "页面不存在。",
    error_csrf: "表单已过期或并非来自本后台。请返回、刷新页面后重试。",
    error_bad_request: "地址中有无效的参数。",
    error_internal: "发生了意外错误,已记录日志。",
    back_home: "返回概览",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_supported_language() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Some(Lang::Zh)
        );
        assert_eq!(
            Lang::from_accept_language("fr-FR, en;q=0.5, zh;q=0.7"),
            Some(Lang::Zh)
        );
        assert_eq!(Lang::from_accept_language("fr, de"), None);
        assert_eq!(Lang::from_accept_language("zh;q=0, en"), Some(Lang::En));
    }

    #[test]
    fn both_catalogs_say_which_language_they_are() {
        assert_eq!(EN.lang, Lang::En);
        assert_eq!(ZH.lang, Lang::Zh);
        assert_eq!(ZH.wait_minutes(3), "登录失败次数过多。请在 3 分钟后重试。");
        assert_eq!(EN.user_count(1), "1 user");
    }
}

//! Validated values the rest of the crate passes around.
//!
//! Each type has a private field and a `parse()` that is the only way to build one from
//! outside input, so a value of the type is proof that it passed validation.

mod avatar_url;
mod login_code;
mod nickname;
mod openid;
mod secret;

pub use avatar_url::AvatarUrl;
pub use login_code::LoginCode;
pub use nickname::{Nickname, PLACEHOLDER_NICKNAME};
pub use openid::{OpenId, UnionId};
pub use secret::{Secret, SessionKey};

/// Why a piece of outside input was refused; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// True for characters that are invisible or reorder text: controls (NUL, newlines, ESC …),
/// bidirectional overrides and isolates, which are used to disguise a name in a list.
pub(crate) fn is_disallowed_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}' // zero-width space (ZWJ / ZWNJ stay: emoji sequences need them)
            | '\u{200E}'..='\u{200F}' // left-to-right and right-to-left marks
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // byte-order mark / zero-width no-break space
        )
}

//! Timestamps as SQLite stores them, read and written without chrono's format parser.
//!
//! diesel stores a `NaiveDateTime` as the text `YYYY-MM-DD HH:MM:SS[.fff[fff[fff]]]` and
//! reads it back by trying chrono's `parse_from_str` with up to eighteen formats, each
//! parsed anew from its format string. The profiles of logins and token checks showed that
//! parsing and formatting; these do the common form by hand, in exactly diesel's text, and
//! hand anything else to diesel.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Nullable, Timestamp};
use diesel::sqlite::{Sqlite, SqliteValue};

/// A `Timestamp` column's value; models name it in `serialize_as` / `deserialize_as`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Timestamp)]
pub struct DbTime(pub NaiveDateTime);

/// A `Nullable<Timestamp>` column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Nullable<Timestamp>)]
pub struct DbTimeOpt(pub Option<NaiveDateTime>);

impl From<NaiveDateTime> for DbTime {
    fn from(t: NaiveDateTime) -> Self {
        Self(t)
    }
}

impl From<DbTime> for NaiveDateTime {
    fn from(t: DbTime) -> Self {
        t.0
    }
}

impl From<DbTimeOpt> for Option<NaiveDateTime> {
    fn from(t: DbTimeOpt) -> Self {
        t.0
    }
}

/// `t` as diesel writes it (chrono's `%F %T%.f`: no fraction, or 3, 6 or 9 digits).
pub fn format(t: &NaiveDateTime) -> String {
    TimeText::new(t).as_str().to_owned()
}

/// Longest text [`TimeText`] keeps inline: `YYYY-MM-DD HH:MM:SS.fffffffff`.
const INLINE_TEXT: usize = 29;

/// A timestamp formatted once, in diesel's text, and bound from here without an allocation.
/// The login writer binds a login's time to several columns: formatting it for each, each
/// time into a new `String`, was 4.9% of the writer's instructions per new user.
#[derive(Debug, Clone)]
pub struct TimeText(Text);

#[derive(Debug, Clone)]
enum Text {
    Inline([u8; INLINE_TEXT], u8),
    /// Years outside 0-9999 (a token lifetime of millennia, say), left to chrono.
    Other(String),
}

impl TimeText {
    /// Formats `t`. Digits are written by hand: `write!` cost the login writer 3% of its
    /// time.
    pub fn new(t: &NaiveDateTime) -> Self {
        use chrono::Datelike;
        let (date, time) = (t.date(), t.time());
        let Ok(year @ 0..=9999) = u32::try_from(date.year()) else {
            return Self(Text::Other(t.format("%F %T%.f").to_string()));
        };
        let mut out = [0u8; INLINE_TEXT];
        let mut at = 0;
        let mut push = |value: u32, width: usize, then: Option<u8>| {
            write_digits(&mut out[at..at + width], value);
            at += width;
            if let Some(separator) = then {
                out[at] = separator;
                at += 1;
            }
        };
        // Leap seconds (nanoseconds past 1e9) never occur: the clock here is `Utc::now`.
        let (fraction, digits) = match time.nanosecond() {
            0 => (0, 0),
            n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
            n if n % 1_000 == 0 => (n / 1_000, 6),
            n => (n, 9),
        };
        push(year, 4, Some(b'-'));
        push(date.month(), 2, Some(b'-'));
        push(date.day(), 2, Some(b' '));
        push(time.hour(), 2, Some(b':'));
        push(time.minute(), 2, Some(b':'));
        push(time.second(), 2, (digits > 0).then_some(b'.'));
        push(fraction, digits, None);
        Self(Text::Inline(out, at as u8))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Inline(bytes, len) => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("ASCII digits and separators"),
            Text::Other(text) => text,
        }
    }
}

impl ToSql<Timestamp, Sqlite> for TimeText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.as_str());
        Ok(IsNull::No)
    }
}

/// `n` in decimal without `core::fmt` (which costs several times as much): a buffer and
/// where in it the digits start (the token's login id, the access log's figures).
pub(crate) fn decimal_digits(mut n: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return (digits, at);
        }
    }
}

/// Appends `value`'s last `width` decimal digits, zero-padded (the access log's time too).
pub(crate) fn push_digits(out: &mut Vec<u8>, value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    write_digits(&mut out[start..], value);
}

/// Fills `slots` with `value`'s last `slots.len()` decimal digits, zero-padded.
fn write_digits(slots: &mut [u8], mut value: u32) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to 9 digits; `None` for anything
/// else (which diesel's own parser then reads).
pub fn parse(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20..b.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
    Some(date.and_time(time))
}

fn read(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<NaiveDateTime> {
    let fast = parse(value.read_text());
    match fast {
        Some(t) => Ok(t),
        None => <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value),
    }
}

impl FromSql<Timestamp, Sqlite> for DbTime {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        read(value).map(Self)
    }
}

impl FromSql<Nullable<Timestamp>, Sqlite> for DbTimeOpt {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        read(value).map(|t| Self(Some(t)))
    }

    fn from_nullable_sql(value: Option<SqliteValue<'_, '_, '_>>) -> deserialize::Result<Self> {
        value.map_or(Ok(Self(None)), Self::from_sql)
    }
}

impl ToSql<Timestamp, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(format(&self.0));
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_text(t: &NaiveDateTime) -> String {
        t.format("%F %T%.f").to_string()
    }

    proptest! {
        #[test]
        fn formatting_matches_diesels_text_and_parsing_reads_it_back(
            secs in -100_000_000_000i64..400_000_000_000i64,
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000),
                                 (0u32..1_000_000).prop_map(|u| u * 1000), 0u32..1_000_000_000],
        ) {
            let t = chrono::DateTime::from_timestamp(secs, nanos).unwrap().naive_utc();
            let text = TimeText::new(&t);
            prop_assert_eq!(text.as_str(), chrono_text(&t));
            let text = format(&t);
            if chrono::Datelike::year(&t) >= 0 && chrono::Datelike::year(&t) <= 9999 {
                prop_assert_eq!(parse(&text), Some(t));
            }
        }
    }

    #[test]
    fn other_forms_are_left_to_diesel() {
        assert_eq!(parse("2026-01-01"), None);
        assert_eq!(parse("2026-01-01T10:00:00"), None);
        assert_eq!(parse("2026-01-01 10:00:00Z"), None);
        assert_eq!(parse("2026-01-01 10:00:00."), None);
        assert_eq!(parse("2026-02-30 10:00:00"), None);
        assert_eq!(parse("2026-01-01 1a:00:00"), None);
        assert_eq!(
            parse("2026-01-01 10:00:00.5"),
            NaiveDate::from_ymd_opt(2026, 1, 1)
                .unwrap()
                .and_hms_milli_opt(10, 0, 0, 500)
        );
    }
}

//! The lookup by openid (`user_openids`), filled in batches by the login writer.
//!
//! Openids come in no order. While each new user went into a UNIQUE index on `users.openid`
//! as its login was committed, nearly every new user changed a page of that index of its
//! own, and each commit wrote a dozen such pages whole to the WAL: the login writer's CPU per
//! new user was 10-14 µs with openids in no order against 5-6 with openids in order
//! (`examples/writer_micro`), and in the bench new-users' server CPU per login was 53-55 µs
//! against 45-48.
//!
//! So the writer keeps the users it created that are not in `user_openids` yet in memory
//! ([`PendingOpenids`]), finds them there, and moves them over in slices of consecutive
//! openids: a sweep through all of them in openid order, so one page of the index takes every
//! pending openid that falls on it at once. While logins come, each login batch's commit
//! carries a slice about as large as the new users it made, once [`KEPT_PENDING`] are pending
//! (slices of a round of their own, every 25 ms, stalled the logins queued behind them: more
//! idle CPU, no more logins a second); when they stop, a round moves the rest at once. A
//! Bloom filter ([`OpenidFilter`]) spares most new users the read of `user_openids`.
//! When a sweep ends, every user up to the highest id known when it began is in
//! `user_openids`, and `indexed_through` says so. A lookup by openid from anywhere else
//! ([`UserByOpenid`](super::login_statements::UserByOpenid), the console's search) also
//! reads the users past `indexed_through`: the newest rows, a short range of ids.
//!
//! openids stay unique: only the writer creates users and it looks in both places first,
//! and `user_openids`' primary key refuses a second user with an openid already there.

use std::collections::BTreeMap;
use std::ops::Bound;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::schema::{user_openids, user_openids_progress, users};
use super::DbConnection;

/// Openids left pending while logins come: login batches move a slice over only beyond
/// this many. A slice of the sweep then spans about 1/this of the openids' range, so a page
/// of `user_openids` takes its pending openids together (a million users fill about 10,000
/// pages) at a few MiB of memory.
pub const KEPT_PENDING: usize = 32_768;

/// Should login batches fall far behind, a round moves 1/this of the pending openids.
const ROUNDS_A_SWEEP: usize = 32;

/// More pending users than this at start (users imported straight into the table, say) are
/// moved over in SQL at once rather than held in memory.
const MOST_HELD_AT_START: i64 = 100_000;

/// Which openids may be stored: a Bloom filter of every openid in `user_openids` or pending,
/// so that a new user's login need not read the page of `user_openids` where its openid would
/// be (a page of its own for nearly every new user, rarely in SQLite's cache) only to find
/// it absent.
///
/// It grows in layers: once the newest layer holds as many openids as it has room for, new
/// ones go into a layer twice its size, so the share of unknown openids that pass stays
/// small however many users arrive after the start.
#[derive(Debug)]
pub struct OpenidFilter {
    layers: Vec<Vec<u64>>,
    /// Openids in the newest layer.
    in_newest: usize,
    hasher: std::hash::RandomState,
}

impl OpenidFilter {
    /// Bits an openid takes in a full layer: with three set for each, about one openid in
    /// 30 that is not stored still passes a full layer, and is looked up in the table as
    /// before (one in 200 while it is half full).
    const BITS_EACH: usize = 8;
    /// Openids the smallest layer has room for (256 KiB).
    const FEWEST: usize = 1 << 18;

    /// An empty filter whose first layer has room for `openids` openids and as many again.
    pub fn with_room_for(openids: usize) -> Self {
        let room = (openids * 2).max(Self::FEWEST).next_power_of_two();
        Self {
            layers: vec![vec![0; room * Self::BITS_EACH / 64]],
            in_newest: 0,
            hasher: std::hash::RandomState::new(),
        }
    }

    /// The three bits of `openid` in a layer of `words` words, from one 64-bit hash (double
    /// hashing).
    fn positions(hash: u64, words: usize) -> [usize; 3] {
        let mask = words * 64 - 1;
        let (a, b) = (hash as usize, (hash >> 32) as usize | 1);
        [
            a & mask,
            a.wrapping_add(b) & mask,
            a.wrapping_add(b.wrapping_mul(2)) & mask,
        ]
    }

    fn hash(&self, openid: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(openid)
    }

    /// Notes that `openid` is stored.
    pub fn insert(&mut self, openid: &str) {
        let hash = self.hash(openid);
        let newest = self.layers.last().map_or(0, Vec::len);
        if self.in_newest >= newest * 64 / Self::BITS_EACH {
            self.layers.push(vec![0; newest * 2]);
            self.in_newest = 0;
        }
        let layer = self.layers.last_mut().expect("a filter has a layer");
        for bit in Self::positions(hash, layer.len()) {
            layer[bit / 64] |= 1 << (bit % 64);
        }
        self.in_newest += 1;
    }

    /// False only if `openid` was never inserted.
    pub fn may_contain(&self, openid: &str) -> bool {
        let hash = self.hash(openid);
        self.layers.iter().any(|layer| {
            Self::positions(hash, layer.len())
                .iter()
                .all(|&bit| layer[bit / 64] & (1 << (bit % 64)) != 0)
        })
    }

    /// Bytes the layers take.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|layer| layer.len() * 8).sum()
    }
}

/// Users the login writer created (or found) that may not be in `user_openids` yet, by openid.
#[derive(Debug)]
pub struct PendingOpenids {
    by_openid: BTreeMap<String, i64>,
    /// Every openid in `user_openids` or `by_openid`, once [`Self::build_filter`] has read
    /// them; until then every lookup reads the table.
    filter: Option<OpenidFilter>,
    /// Every user up to this id is in `user_openids`, as `user_openids_progress` says.
    through: i64,
    /// Every user up to this id is in `user_openids` or in `by_openid`. Users above it were
    /// created by someone other than the writer (a test, an import): a lookup reads them
    /// from the table until [`Self::catch_up`] takes them in.
    seen_through: i64,
    sweep: Option<Sweep>,
    /// [`KEPT_PENDING`], but for tests.
    kept: usize,
}

#[derive(Debug)]
struct Sweep {
    /// The last openid this sweep moved over: the next slice starts after it.
    after: String,
    /// `seen_through` when the sweep began: all of those users are moved over at its end.
    upto: i64,
}

#[derive(QueryableByName)]
struct Pending {
    #[diesel(sql_type = Text)]
    openid: String,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

impl Default for PendingOpenids {
    fn default() -> Self {
        Self {
            by_openid: BTreeMap::new(),
            filter: None,
            through: 0,
            seen_through: 0,
            sweep: None,
            kept: KEPT_PENDING,
        }
    }
}

impl PendingOpenids {
    /// Login batches leave up to `kept` openids pending instead of [`KEPT_PENDING`].
    #[cfg(test)]
    pub(super) fn keep_at_most(&mut self, kept: usize) {
        self.kept = kept;
    }

    /// Reads what is pending from the database: the users past `indexed_through` that are
    /// not in `user_openids` (a sweep a stop cut short moved some of them over already).
    pub fn load(conn: &mut DbConnection) -> QueryResult<Self> {
        Self::load_holding_at_most(conn, MOST_HELD_AT_START)
    }

    /// [`Self::load`], moving the pending users over in SQL when more than `most`.
    pub(super) fn load_holding_at_most(conn: &mut DbConnection, most: i64) -> QueryResult<Self> {
        let through: i64 = user_openids_progress::table
            .select(user_openids_progress::indexed_through)
            .get_result(conn)
            .optional()?
            .unwrap_or(0);
        let newest: i64 = users::table
            .select(diesel::dsl::max(users::id))
            .get_result::<Option<i64>>(conn)?
            .unwrap_or(0);
        let mut pending = Self {
            through,
            seen_through: through,
            ..Self::default()
        };
        if newest - through > most {
            pending.move_all_in_sql(conn, newest)?;
        }
        pending.catch_up(conn, newest)?;
        Ok(pending)
    }

    /// Moves every user up to `newest` over in one statement, sorted by SQLite.
    fn move_all_in_sql(&mut self, conn: &mut DbConnection, newest: i64) -> QueryResult<()> {
        let through = self.through;
        conn.immediate_transaction(|conn| {
            let moved = diesel::sql_query(
                "INSERT INTO user_openids (openid, user_id)
                 SELECT openid, id FROM users WHERE id > ? AND id <= ? ORDER BY openid
                 ON CONFLICT (openid) DO NOTHING",
            )
            .bind::<BigInt, _>(through)
            .bind::<BigInt, _>(newest)
            .execute(conn)?;
            tracing::info!(
                users = moved,
                "added users stored by others to the openid lookup"
            );
            set_through(conn, newest)
        })?;
        self.through = newest;
        self.seen_through = newest;
        Ok(())
    }

    /// Takes in the users up to `newest` that someone other than the writer created.
    pub fn catch_up(&mut self, conn: &mut DbConnection, newest: i64) -> QueryResult<()> {
        if newest <= self.seen_through {
            return Ok(());
        }
        let rows: Vec<Pending> = diesel::sql_query(
            "SELECT openid, id FROM users WHERE id > ? AND id <= ?
             AND NOT EXISTS (SELECT 1 FROM user_openids m WHERE m.openid = users.openid)",
        )
        .bind::<BigInt, _>(self.seen_through)
        .bind::<BigInt, _>(newest)
        .load(conn)?;
        for row in rows {
            if let Some(filter) = &mut self.filter {
                filter.insert(&row.openid);
            }
            self.by_openid.entry(row.openid).or_insert(row.id);
        }
        self.seen_through = newest;
        Ok(())
    }

    /// Reads every stored openid into the filter (a fifth of a second at a million users:
    /// the writer does it before its first batch, not at start).
    pub fn build_filter(&mut self, conn: &mut DbConnection) -> QueryResult<()> {
        let stored: i64 = user_openids::table.count().get_result(conn)?;
        let mut filter = OpenidFilter::with_room_for(
            usize::try_from(stored).unwrap_or(0) + self.by_openid.len(),
        );
        for openid in user_openids::table
            .select(user_openids::openid)
            .load_iter::<String, diesel::connection::DefaultLoadingMode>(conn)?
        {
            filter.insert(&openid?);
        }
        for openid in self.by_openid.keys() {
            filter.insert(openid);
        }
        tracing::debug!(
            openids = stored,
            bytes = filter.bytes(),
            "read the stored openids into the filter"
        );
        self.filter = Some(filter);
        Ok(())
    }

    /// False when no user has `openid` among those this set knows of: every user up to
    /// [`Self::seen_through`] once the filter is built.
    pub fn may_exist(&self, openid: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.may_contain(openid))
    }

    /// The user with `openid`, if it is pending.
    pub fn get(&self, openid: &str) -> Option<i64> {
        self.by_openid.get(openid).copied()
    }

    /// Users above this id may be neither pending nor in `user_openids`.
    pub fn seen_through(&self) -> i64 {
        self.seen_through
    }

    /// Whether any user waits to go into `user_openids`.
    pub fn any(&self) -> bool {
        !self.by_openid.is_empty() || self.through < self.seen_through
    }

    /// Notes a user the writer has just committed.
    pub fn created(&mut self, openid: &str, id: i64) {
        if let Some(filter) = &mut self.filter {
            filter.insert(openid);
        }
        self.by_openid.insert(openid.to_owned(), id);
        self.seen_through = self.seen_through.max(id);
    }

    /// Moves the next slice of the sweep over, in a transaction of its own, through `insert`
    /// (which adds an openid to `user_openids` unless it is there, and says whether it added
    /// it). Nothing changes in memory unless it commits.
    ///
    /// `quiet`: no logins came since the last round, so every pending openid goes over at
    /// once (a page of the index takes as many as it will ever get; none waits behind it).
    /// Otherwise only when login batches have fallen behind (see [`Self::slice_for_batch`]).
    pub fn move_some(
        &mut self,
        conn: &mut DbConnection,
        quiet: bool,
        insert: impl FnMut(&str, i64) -> QueryResult<bool>,
    ) -> QueryResult<()> {
        let slice = if quiet {
            self.plan_all()
        } else if self.by_openid.len() > 4 * self.kept {
            self.plan(self.by_openid.len() / ROUNDS_A_SWEEP)
        } else {
            None
        };
        let Some(slice) = slice else {
            return Ok(());
        };
        conn.immediate_transaction(|conn| slice.write(conn, insert))?;
        self.moved(slice);
        Ok(())
    }

    /// The slice a login batch that created `created` users moves over in its own
    /// commit, if any: none while at most [`KEPT_PENDING`] openids are pending, so that
    /// the slices stay dense; as many as the batch created, and a little more, beyond.
    pub fn slice_for_batch(&self, created: usize) -> Option<Slice> {
        let pending = self.by_openid.len();
        if pending <= self.kept {
            return None;
        }
        self.plan(created + (pending - self.kept) / 64 + 1)
    }

    /// Every pending openid, wherever a sweep under way has got to: all users the writer
    /// knows of are in `user_openids` once it commits.
    fn plan_all(&self) -> Option<Slice> {
        self.any().then(|| Slice {
            entries: self
                .by_openid
                .iter()
                .map(|(openid, &id)| (openid.clone(), id))
                .collect(),
            ends: true,
            upto: self.seen_through,
        })
    }

    /// The next `most` openids of the sweep (a new sweep when none is under way).
    fn plan(&self, most: usize) -> Option<Slice> {
        if !self.any() {
            return None;
        }
        let (start, upto) = match &self.sweep {
            Some(sweep) => (Bound::Excluded(sweep.after.as_str()), sweep.upto),
            None => (Bound::Unbounded, self.seen_through),
        };
        let mut entries: Vec<(String, i64)> = self
            .by_openid
            .range::<str, _>((start, Bound::Unbounded))
            .take(most.saturating_add(1))
            .map(|(openid, &id)| (openid.clone(), id))
            .collect();
        let ends = entries.len() <= most;
        entries.truncate(most);
        Some(Slice {
            entries,
            ends,
            upto,
        })
    }

    /// Notes that `slice`'s transaction committed.
    pub fn moved(&mut self, slice: Slice) {
        for (openid, _) in &slice.entries {
            self.by_openid.remove(openid);
        }
        if slice.ends {
            self.through = slice.upto;
            self.sweep = None;
        } else if let Some((last, _)) = slice.entries.into_iter().last() {
            self.sweep = Some(Sweep {
                after: last,
                upto: slice.upto,
            });
        }
    }
}

/// Openids to move into `user_openids` in one transaction, consecutive in the sweep.
#[derive(Debug)]
pub struct Slice {
    entries: Vec<(String, i64)>,
    /// The sweep ends with this slice: `indexed_through` becomes `upto`.
    ends: bool,
    upto: i64,
}

impl Slice {
    /// Writes the slice inside the caller's transaction, through `insert` (see
    /// [`PendingOpenids::move_some`]).
    pub fn write(
        &self,
        conn: &mut DbConnection,
        mut insert: impl FnMut(&str, i64) -> QueryResult<bool>,
    ) -> QueryResult<()> {
        let mut moved = 0;
        for (openid, id) in &self.entries {
            moved += usize::from(insert(openid, *id)?);
        }
        if self.ends {
            set_through(conn, self.upto)?;
        }
        if moved < self.entries.len() {
            // The writer looks in both places before it creates a user, so this is a user
            // stored by someone else with an openid taken already.
            tracing::error!(
                users = self.entries.len() - moved,
                "users share an openid with an earlier user; lookups find the earlier one"
            );
        }
        Ok(())
    }
}

fn set_through(conn: &mut DbConnection, through: i64) -> QueryResult<()> {
    diesel::update(user_openids_progress::table)
        .set(user_openids_progress::indexed_through.eq(through))
        .execute(conn)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_never_forgets_an_openid_and_passes_few_it_never_saw() {
        let mut filter = OpenidFilter::with_room_for(10_000);
        let stored: Vec<String> = (0..10_000).map(|n| format!("oStored{n}")).collect();
        for openid in &stored {
            filter.insert(openid);
        }
        assert!(stored.iter().all(|o| filter.may_contain(o)));
        let passed = (0..10_000)
            .filter(|n| filter.may_contain(&format!("oNever{n}")))
            .count();
        // Half full or less, about one in 200 passes; at most one in 30 when full.
        assert!(passed < 100, "{passed} of 10000 unknown openids passed");
    }

    #[test]
    fn openids_past_the_filters_room_go_into_a_larger_layer_and_unknown_ones_still_rarely_pass() {
        let mut filter = OpenidFilter::with_room_for(0);
        let first = filter.bytes();
        // Four times the first layer's room: two more layers.
        let stored = OpenidFilter::FEWEST * 4;
        for n in 0..stored {
            filter.insert(&format!("oStored{n}"));
        }
        assert_eq!(
            filter.bytes(),
            first * 7,
            "layers of 1, 2 and 4 times the first"
        );
        assert!((0..stored)
            .step_by(101)
            .all(|n| filter.may_contain(&format!("oStored{n}"))));
        let passed = (0..10_000)
            .filter(|n| filter.may_contain(&format!("oNever{n}")))
            .count();
        // Three layers, the last half full: under 3% + 3% + 0.5%.
        assert!(passed < 700, "{passed} of 10000 unknown openids passed");
    }
}

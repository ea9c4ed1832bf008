//! SQLite's own page cache, minus a scan of its whole hash table at most commits.
//!
//! When a B-tree page splits in the middle of an index, SQLite may swap the new pages' numbers
//! so that they stay in order, and it swaps them through a spare number: the page that holds
//! the file's lock bytes, 262,145 with 4 KiB pages (`balance_nonroot`). SQLite's default cache
//! remembers the largest page number it has ever held, so from then on it believes it may
//! hold pages far past the end of the file. At every commit SQLite tells the cache to drop
//! the pages past the end, and the cache, believing there may be some, walks every slot of its
//! hash table to find them. Openids are random, so a new user's openid splits index pages in
//! the middle: the login writer spent 2.4% of its time in that walk, and more the larger its
//! cache.
//!
//! This wraps the default cache and keeps its own account of which page numbers can be in
//! it (see [`KeyBound`]); it passes a "drop the pages from N on" along only when a page
//! numbered N or more may be there. Everything else goes straight to the default cache.

use std::cell::Cell;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// How many page numbers past the bound [`KeyBound`] tracks one by one before it gives up and
/// raises the bound instead. A split swaps one page at a time through the spare number.
const MOVED: usize = 4;

/// Which page numbers a cache may hold: every page in it has a number no greater than
/// `highest`, or one of the numbers in `moved` (pages renumbered past `highest`).
///
/// It may name numbers no page has any more (a page dropped while renumbered); that only
/// costs a truncate passed along that was not needed. It must never miss one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct KeyBound {
    highest: u32,
    moved: [u32; MOVED],
    moved_len: usize,
}

impl KeyBound {
    /// A page numbered `key` is in the cache (found or just created).
    pub(crate) fn fetched(&mut self, key: u32) {
        self.highest = self.highest.max(key);
    }

    /// A page was renumbered from `old` to `new`.
    pub(crate) fn rekeyed(&mut self, old: u32, new: u32) {
        if let Some(i) = self.moved[..self.moved_len].iter().position(|&k| k == old) {
            self.moved_len -= 1;
            self.moved[i] = self.moved[self.moved_len];
        }
        if new <= self.highest {
            return;
        }
        if self.moved_len == MOVED {
            // Too many to track one by one: fold them all into the bound.
            let most = self.moved.iter().copied().max().unwrap_or(0);
            self.highest = self.highest.max(most).max(new);
            self.moved_len = 0;
        } else {
            self.moved[self.moved_len] = new;
            self.moved_len += 1;
        }
    }

    /// Whether a page numbered `limit` or more may be in the cache.
    pub(crate) fn may_hold_from(&self, limit: u32) -> bool {
        limit <= self.highest || self.moved[..self.moved_len].iter().any(|&k| k >= limit)
    }

    /// Every page numbered `limit` or more has left the cache.
    pub(crate) fn truncated(&mut self, limit: u32) {
        self.highest = self.highest.min(limit.saturating_sub(1));
        let mut kept = 0;
        for i in 0..self.moved_len {
            if self.moved[i] < limit {
                self.moved[kept] = self.moved[i];
                kept += 1;
            }
        }
        self.moved_len = kept;
    }
}

/// The default cache's methods, with the ones this module calls checked present.
struct Inner {
    arg: *mut c_void,
    init: unsafe extern "C" fn(*mut c_void) -> c_int,
    shutdown: Option<unsafe extern "C" fn(*mut c_void)>,
    create: unsafe extern "C" fn(c_int, c_int, c_int) -> *mut ffi::sqlite3_pcache,
    cachesize: unsafe extern "C" fn(*mut ffi::sqlite3_pcache, c_int),
    pagecount: unsafe extern "C" fn(*mut ffi::sqlite3_pcache) -> c_int,
    fetch: unsafe extern "C" fn(
        *mut ffi::sqlite3_pcache,
        c_uint,
        c_int,
    ) -> *mut ffi::sqlite3_pcache_page,
    unpin: unsafe extern "C" fn(*mut ffi::sqlite3_pcache, *mut ffi::sqlite3_pcache_page, c_int),
    rekey: unsafe extern "C" fn(
        *mut ffi::sqlite3_pcache,
        *mut ffi::sqlite3_pcache_page,
        c_uint,
        c_uint,
    ),
    truncate: unsafe extern "C" fn(*mut ffi::sqlite3_pcache, c_uint),
    destroy: unsafe extern "C" fn(*mut ffi::sqlite3_pcache),
    shrink: unsafe extern "C" fn(*mut ffi::sqlite3_pcache),
}

// SAFETY: function pointers and SQLite's own argument for them, which it shares between
// threads itself.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();

thread_local! {
    /// Truncates this thread did not pass along: lets tests see the wrapper at work.
    static SKIPPED: Cell<u64> = const { Cell::new(0) };
}

/// One cache: the default cache's, and the account of what it may hold.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    keys: KeyBound,
}

fn inner() -> &'static Inner {
    INNER
        .get()
        .expect("SQLite calls the page cache only once it is installed")
}

/// Installs the wrapper around SQLite's default page cache. SQLite takes a page cache only
/// before it initialises; if it has initialised already (a test opened a connection first),
/// this leaves the default cache in place, which is correct, only slower.
///
/// # Safety
/// Must run before any other thread may initialise SQLite, as `sqlite3_config` requires.
pub(super) unsafe fn install() {
    let mut default: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
    if ffi::sqlite3_config(
        ffi::SQLITE_CONFIG_GETPCACHE2,
        &mut default as *mut ffi::sqlite3_pcache_methods2,
    ) != ffi::SQLITE_OK
    {
        tracing::debug!("SQLite was initialised already; it keeps its default page cache");
        return;
    }
    let (
        Some(init),
        Some(create),
        Some(cachesize),
        Some(pagecount),
        Some(fetch),
        Some(unpin),
        Some(rekey),
        Some(truncate),
        Some(destroy),
        Some(shrink),
    ) = (
        default.xInit,
        default.xCreate,
        default.xCachesize,
        default.xPagecount,
        default.xFetch,
        default.xUnpin,
        default.xRekey,
        default.xTruncate,
        default.xDestroy,
        default.xShrink,
    )
    else {
        tracing::warn!("SQLite's default page cache lacks a method; it is left unwrapped");
        return;
    };
    let stored = INNER.set(Inner {
        arg: default.pArg,
        init,
        shutdown: default.xShutdown,
        create,
        cachesize,
        pagecount,
        fetch,
        unpin,
        rekey,
        truncate,
        destroy,
        shrink,
    });
    if stored.is_err() {
        return;
    }
    let wrapper = ffi::sqlite3_pcache_methods2 {
        iVersion: 1,
        pArg: std::ptr::null_mut(),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        xCreate: Some(x_create),
        xCachesize: Some(x_cachesize),
        xPagecount: Some(x_pagecount),
        xFetch: Some(x_fetch),
        xUnpin: Some(x_unpin),
        xRekey: Some(x_rekey),
        xTruncate: Some(x_truncate),
        xDestroy: Some(x_destroy),
        xShrink: Some(x_shrink),
    };
    // SQLite copies the methods, so a local is enough.
    if ffi::sqlite3_config(
        ffi::SQLITE_CONFIG_PCACHE2,
        &wrapper as *const ffi::sqlite3_pcache_methods2,
    ) != ffi::SQLITE_OK
    {
        tracing::warn!("SQLite refused the page cache wrapper; it keeps its default one");
    }
}

/// Truncates the wrapper has not passed along on this thread (connections used on it);
/// zero when SQLite runs its default cache unwrapped. For tests and diagnostics.
pub fn truncates_skipped() -> u64 {
    SKIPPED.with(Cell::get)
}

/// # Safety (of every `x_` function)
/// SQLite calls them with caches `x_create` returned, one thread at a time per cache.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    &mut *p.cast::<Cache>()
}

unsafe extern "C" fn x_init(_arg: *mut c_void) -> c_int {
    let inner = inner();
    (inner.init)(inner.arg)
}

unsafe extern "C" fn x_shutdown(_arg: *mut c_void) {
    let inner = inner();
    if let Some(shutdown) = inner.shutdown {
        shutdown(inner.arg);
    }
}

unsafe extern "C" fn x_create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let made = (inner().create)(page_size, extra, purgeable);
    if made.is_null() {
        return made;
    }
    Box::into_raw(Box::new(Cache {
        inner: made,
        keys: KeyBound::default(),
    }))
    .cast()
}

unsafe extern "C" fn x_cachesize(p: *mut ffi::sqlite3_pcache, pages: c_int) {
    (inner().cachesize)(cache(p).inner, pages);
}

unsafe extern "C" fn x_pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    (inner().pagecount)(cache(p).inner)
}

unsafe extern "C" fn x_fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let cache = cache(p);
    let page = (inner().fetch)(cache.inner, key, create);
    if !page.is_null() {
        cache.keys.fetched(key);
    }
    page
}

unsafe extern "C" fn x_unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    (inner().unpin)(cache(p).inner, page, discard);
}

unsafe extern "C" fn x_rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let cache = cache(p);
    (inner().rekey)(cache.inner, page, old, new);
    cache.keys.rekeyed(old, new);
}

unsafe extern "C" fn x_truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let cache = cache(p);
    if cache.keys.may_hold_from(limit) {
        (inner().truncate)(cache.inner, limit);
        cache.keys.truncated(limit);
    } else {
        SKIPPED.with(|n| n.set(n.get() + 1));
    }
}

unsafe extern "C" fn x_destroy(p: *mut ffi::sqlite3_pcache) {
    let cache = Box::from_raw(p.cast::<Cache>());
    (inner().destroy)(cache.inner);
}

unsafe extern "C" fn x_shrink(p: *mut ffi::sqlite3_pcache) {
    (inner().shrink)(cache(p).inner);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// What SQLite may do to a cache, in page numbers.
    #[derive(Debug, Clone)]
    enum Op {
        Fetch(u32),
        /// Renumber the `n`th page held (in order) to a number not held.
        Rekey(usize, u32),
        /// Drop the `n`th page held, as an unpin with discard does.
        Discard(usize),
        Truncate(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Small numbers collide often; the spare page's number stands far past them.
        let key = prop_oneof![4 => 1u32..60, 1 => Just(262_145u32)];
        prop_oneof![
            key.clone().prop_map(Op::Fetch),
            (0usize..40, key.clone()).prop_map(|(n, k)| Op::Rekey(n, k)),
            (0usize..40).prop_map(Op::Discard),
            key.prop_map(Op::Truncate),
        ]
    }

    proptest! {
        #[test]
        fn a_truncate_is_skipped_only_when_no_page_it_would_drop_is_held(
            ops in proptest::collection::vec(op(), 0..200)
        ) {
            let mut held = BTreeSet::new();
            let mut keys = KeyBound::default();
            for op in ops {
                match op {
                    Op::Fetch(k) => {
                        held.insert(k);
                        keys.fetched(k);
                    }
                    Op::Rekey(n, new) => {
                        if held.is_empty() || held.contains(&new) {
                            continue;
                        }
                        let old = *held.iter().nth(n % held.len()).unwrap();
                        held.remove(&old);
                        held.insert(new);
                        keys.rekeyed(old, new);
                    }
                    Op::Discard(n) => {
                        if let Some(&k) = held.iter().nth(n % held.len().max(1)) {
                            held.remove(&k);
                        }
                    }
                    Op::Truncate(limit) => {
                        let would_drop = held.range(limit..).next().is_some();
                        prop_assert!(
                            keys.may_hold_from(limit) || !would_drop,
                            "skipped a truncate from {limit} with {held:?} held ({keys:?})"
                        );
                        if keys.may_hold_from(limit) {
                            held.retain(|&k| k < limit);
                            keys.truncated(limit);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_swap_through_the_spare_page_leaves_nothing_past_the_end_to_drop() {
        // What a split does: pages 40 and 41 trade numbers through the lock-byte page.
        let mut keys = KeyBound::default();
        for k in 1..=41 {
            keys.fetched(k);
        }
        keys.rekeyed(41, 262_145);
        assert!(keys.may_hold_from(42), "page 262145 is held mid-swap");
        keys.rekeyed(40, 41);
        keys.rekeyed(262_145, 40);
        assert!(!keys.may_hold_from(42), "{keys:?}");
        assert!(keys.may_hold_from(41));
    }

    #[test]
    fn pages_renumbered_past_the_bound_beyond_what_it_tracks_raise_the_bound() {
        let mut keys = KeyBound::default();
        let last = MOVED as u32 + 1;
        for k in 1..=last {
            keys.fetched(k);
        }
        for k in 1..=last {
            keys.rekeyed(k, 100 + k);
        }
        for k in 1..=last {
            assert!(keys.may_hold_from(100 + k), "{k}: {keys:?}");
        }
        keys.truncated(11);
        assert!(!keys.may_hold_from(11), "{keys:?}");
    }
}

//! The concurrent listing: the first page gives `total`, the remaining pages are fetched
//! several at a time and delivered in offset order as they complete, de-duplicated by uuid,
//! stopping at the first empty (or short) page. Every pass is checked for exactness (each
//! user once, as many as the total says); one that is not is read again one page at a
//! time, and named inexact if that does not settle it. Memory is bounded by the window of
//! pages in flight (narrowed when pages are large) and by a cap on the users followed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{EquinixClient, EquinixError, ListFilter, Page, SshUser};
use sshfleet_core::shutdown::Shutdown;

/// The pages of a listing held at once (requested, or received ahead of their turn) take
/// about this many bytes at most, whatever the page concurrency asks: one page can be as
/// large as the 32 MiB body cap, and eight of those would be a quarter of a GiB.
pub(crate) const DEFAULT_WINDOW_BYTES: usize = 64 * 1024 * 1024;

/// The most users a listing follows: a `total` above it is implausible, and pages past it
/// are not requested (the seen uuids are held in memory).
pub(crate) const DEFAULT_MAX_USERS: u64 = 1_000_000;

/// Why a pass of the listing is not exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Doubt {
    /// Users served on more than one page: the pages overlapped.
    Repeated {
        /// The offsets of the pages that served users again.
        offsets: Vec<u64>,
        users: u64,
        /// A few of them.
        sample: Vec<String>,
    },
    /// The API's total changed from one page to another.
    TotalChanged { from: u64, to: u64 },
    /// Full pages went on past the API's total (`total: 0` with a full page included).
    TotalLow { total: u64, served: u64 },
    /// A total larger than the cap: not followed.
    Implausible { total: u64, cap: u64 },
    /// Fewer distinct users served than the API's total.
    Missing { listed: u64, total: u64 },
    /// The cap was reached with pages still full.
    CapReached { cap: u64 },
}

impl Doubt {
    /// Whether reading the pages again may show the listing exact: not for what the API
    /// states on every page (its total), nor at the cap (that would double the longest
    /// listing).
    fn may_settle(&self) -> bool {
        matches!(
            self,
            Doubt::Repeated { .. } | Doubt::TotalChanged { .. } | Doubt::Missing { .. }
        )
    }
}

impl fmt::Display for Doubt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Doubt::Repeated {
                offsets,
                users,
                sample,
            } => {
                let offsets: Vec<String> = offsets.iter().map(u64::to_string).collect();
                write!(
                    f,
                    "{users} user(s) served again by the page(s) at offset {} (pages overlapped; e.g. {})",
                    offsets.join(", "),
                    sample.join(", ")
                )
            }
            Doubt::TotalChanged { from, to } => {
                write!(f, "the API's total changed from {from} to {to} while paging")
            }
            Doubt::TotalLow { total, served } => write!(
                f,
                "full pages served {served} users though the API's total is {total}"
            ),
            Doubt::Implausible { total, cap } => write!(
                f,
                "the API's total of {total} is implausible (more than the {cap} users a listing follows)"
            ),
            Doubt::Missing { listed, total } => write!(
                f,
                "{listed} distinct users served of the API's total of {total}: {} never served",
                total.saturating_sub(*listed)
            ),
            Doubt::CapReached { cap } => {
                write!(f, "the listing stopped at {cap} users with pages still full")
            }
        }
    }
}

/// What one pass saw, to judge whether it is exact.
#[derive(Debug, Default)]
struct PassCheck {
    /// Users served in this pass.
    seen: HashSet<String>,
    repeated_at: BTreeSet<u64>,
    repeated: u64,
    sample: Vec<String>,
    first_total: Option<u64>,
    last_total: Option<u64>,
    /// The total, and how far full pages went past it.
    past_total: Option<(u64, u64)>,
    cap_reached: bool,
}

impl PassCheck {
    /// Notes a user served; whether it is new to this pass.
    fn note_user(&mut self, uuid: &str) -> bool {
        self.seen.insert(uuid.to_owned())
    }

    /// Notes a user served again, at `offset`: a sign the listing shifted under the pass.
    fn note_repeat(&mut self, offset: u64, uuid: &str) {
        self.repeated = self.repeated.saturating_add(1);
        self.repeated_at.insert(offset);
        if self.sample.len() < 3 {
            self.sample.push(uuid.to_owned());
        }
    }

    fn note_total(&mut self, total: Option<u64>) {
        if let Some(total) = total {
            self.first_total.get_or_insert(total);
            self.last_total = Some(total);
        }
    }

    /// Why the pass is not exact; empty when it is.
    fn doubts(&self, cap: u64) -> Vec<Doubt> {
        let mut doubts = Vec::new();
        if self.repeated > 0 {
            doubts.push(Doubt::Repeated {
                offsets: self.repeated_at.iter().copied().collect(),
                users: self.repeated,
                sample: self.sample.clone(),
            });
        }
        let (first, last) = (self.first_total, self.last_total);
        if let (Some(from), Some(to)) = (first, last) {
            if from != to {
                doubts.push(Doubt::TotalChanged { from, to });
            }
        }
        if let Some(total) = first.filter(|t| *t > cap) {
            doubts.push(Doubt::Implausible { total, cap });
        }
        if let Some((total, served)) = self.past_total {
            doubts.push(Doubt::TotalLow { total, served });
        }
        if self.cap_reached {
            doubts.push(Doubt::CapReached { cap });
        }
        let listed = self.seen.len() as u64;
        if let Some(total) = last.filter(|t| *t <= cap && listed < *t) {
            doubts.push(Doubt::Missing { listed, total });
        }
        doubts
    }
}

/// How a listing went. `error` is set when a page failed, brought nothing new, or ended the
/// listing short of the API's total (the listing is then incomplete); the pages before it
/// were delivered.
#[derive(Debug, Default)]
pub struct ListingStats {
    /// Pages received, the empty one that ended the listing included.
    pub pages: u64,
    /// Users delivered (each uuid once).
    pub users: u64,
    /// Users seen again on a later page (shifted by changes during the listing) and dropped.
    pub duplicates: u64,
    /// `total` on the first page, and the last one seen.
    pub first_total: Option<u64>,
    pub last_total: Option<u64>,
    /// Some page reported a different `total` than the first.
    pub total_changed: bool,
    /// The offset of the empty or short page that ended the listing before `total` was
    /// reached.
    pub ended_early_at: Option<u64>,
    /// The first walk was not exact, so the listing was walked a second time, one page at
    /// a time.
    pub rechecked: bool,
    /// Users found only by that second walk.
    pub recovered: u64,
    /// Why the listing is not exact (the second walk's doubts when there was one); the
    /// error is then [`EquinixError::Inexact`].
    pub doubts: Vec<Doubt>,
    pub interrupted: bool,
    /// The receiver went away (the output closed); the listing stopped early.
    pub output_closed: bool,
    /// The fewest pages held at once because pages were large (the byte budget), when that
    /// was fewer than the page concurrency; and the largest page body seen.
    pub narrowed_to: Option<usize>,
    pub largest_page_bytes: usize,
    pub error: Option<EquinixError>,
}

/// Lists every user matching a filter.
pub struct PageFetcher {
    client: Arc<EquinixClient>,
    filter: Arc<ListFilter>,
    page_size: u64,
    concurrency: usize,
    window_bytes: usize,
    max_users: u64,
}

/// The pages in flight and the ones that arrived ahead of their turn.
struct Window {
    tasks: JoinSet<(u64, Result<Page, EquinixError>)>,
    early: BTreeMap<u64, Page>,
    /// The next offset to request.
    next_request: u64,
    /// The next offset to deliver.
    next_delivery: u64,
    step: u64,
    /// Request pages below this offset (the latest `total`, or past a full page).
    end: u64,
    /// Never request pages at or past this offset (the cap).
    cap: u64,
    /// At most this many pages requested and not yet delivered.
    width: usize,
}

/// Delivers users once each and keeps the count.
struct Delivery {
    out: mpsc::Sender<SshUser>,
    seen: HashSet<String>,
    stats: ListingStats,
    /// In the second walk, users seen before are expected, not duplicates.
    rechecking: bool,
    pass: PassCheck,
    max_users: u64,
}

impl PageFetcher {
    /// `concurrency` pages at once (1 = one page at a time, as public clients do).
    pub fn new(
        client: Arc<EquinixClient>,
        filter: ListFilter,
        page_size: u64,
        concurrency: usize,
    ) -> PageFetcher {
        PageFetcher {
            client,
            filter: Arc::new(filter),
            page_size: page_size.max(1),
            concurrency: concurrency.max(1),
            window_bytes: DEFAULT_WINDOW_BYTES,
            max_users: DEFAULT_MAX_USERS,
        }
    }

    /// Follows at most `users` users (at least one page).
    pub fn with_max_users(mut self, users: u64) -> PageFetcher {
        self.max_users = users.max(1);
        self
    }

    /// Holds about `bytes` of pages at once (at least one page, whatever its size).
    pub fn with_window_bytes(mut self, bytes: usize) -> PageFetcher {
        self.window_bytes = bytes;
        self
    }

    /// Sends every user to `out` in offset order; ends at the first empty page, at `total`
    /// (following it when it grows, and past it while pages are full), on a failed page, at
    /// the cap, or when `shutdown` fires.
    ///
    /// Offset paging is not a snapshot: when users are added or removed, entries shift
    /// between pages, and concurrent pages can miss a user that sequential paging would not.
    /// A pass that is not exact (overlaps, a changing or implausible total, fewer users than
    /// the total) is walked once more, one page at a time, adding the users not delivered
    /// yet; if that walk is not exact either, the listing ends with
    /// [`EquinixError::Inexact`] naming why.
    pub async fn run(self, out: mpsc::Sender<SshUser>, shutdown: Shutdown) -> ListingStats {
        let mut delivery = Delivery {
            out,
            seen: HashSet::new(),
            stats: ListingStats::default(),
            rechecking: false,
            pass: PassCheck::default(),
            max_users: self.max_users,
        };
        self.pass(&mut delivery, self.concurrency, &shutdown).await;
        let mut doubts = delivery.pass.doubts(self.max_users);
        if doubts.iter().any(Doubt::may_settle) && delivery.may_continue() {
            delivery.rechecking = true;
            delivery.stats.rechecked = true;
            delivery.pass = PassCheck::default();
            self.pass(&mut delivery, 1, &shutdown).await;
            doubts = delivery.pass.doubts(self.max_users);
        }
        delivery.pass = PassCheck::default();
        if !doubts.is_empty() && delivery.may_continue() {
            delivery.stats.error = Some(EquinixError::Inexact {
                listed: delivery.stats.users,
                doubts: doubts.clone(),
                rechecked: delivery.stats.rechecked,
            });
        }
        delivery.stats.doubts = doubts;
        delivery.stats
    }

    async fn pass(&self, delivery: &mut Delivery, concurrency: usize, shutdown: &Shutdown) {
        // The first page may wait for a token and its retries: a stop request ends it too.
        let mut stop = shutdown.clone();
        let first = tokio::select! {
            biased;
            () = stop.wait() => {
                delivery.stats.interrupted = true;
                return;
            }
            first = self.client.list_page(&self.filter, 0, self.page_size) => first,
        };
        let first = match first {
            Ok(page) => page,
            Err(e) => {
                delivery.stats.error = Some(page_error(0, e));
                return;
            }
        };
        if !delivery.rechecking {
            delivery.stats.first_total = first.total;
        }
        let step = self.step(&first);
        let cap = self.max_users;
        // Without a total, the pages are walked one at a time until one comes back short.
        let concurrency = if first.total.is_some() {
            concurrency
        } else {
            1
        };
        let mut end = first.total.unwrap_or(u64::MAX).min(cap);
        let served = first.users.len() as u64;
        if served >= step && served > end {
            // A full page past the total (`total: 0` with a full page): there may be more.
            end = served.saturating_add(1).min(cap);
        }
        if delivery.take(first, 0, step).await {
            let window = Window {
                tasks: JoinSet::new(),
                early: BTreeMap::new(),
                next_request: step,
                next_delivery: step,
                step,
                end,
                cap,
                width: concurrency,
            };
            self.rest(window, concurrency, delivery, shutdown).await;
        }
    }

    /// The offset step: the page size, or what the API says (or shows) it serves at most.
    fn step(&self, first: &Page) -> u64 {
        let served = first.users.len() as u64;
        match first.limit {
            Some(limit) if limit > 0 => limit.min(self.page_size),
            None if served > 0 && first.total.is_some_and(|t| t > served) => {
                served.min(self.page_size)
            }
            _ => self.page_size,
        }
    }

    async fn rest(
        &self,
        mut window: Window,
        concurrency: usize,
        delivery: &mut Delivery,
        shutdown: &Shutdown,
    ) {
        self.narrow(&mut window, concurrency, delivery);
        let mut stop = shutdown.clone();
        loop {
            if shutdown.is_triggered() {
                delivery.stats.interrupted = true;
                return;
            }
            self.fill(&mut window);
            // A stop request abandons the pages in flight (dropping the set aborts them).
            let joined = tokio::select! {
                _ = stop.wait() => continue,
                joined = window.tasks.join_next() => joined,
            };
            let Some(joined) = joined else {
                return;
            };
            let Ok((offset, result)) = joined else {
                continue;
            };
            match result {
                Ok(page) => {
                    delivery.note_size(&page);
                    self.narrow(&mut window, concurrency, delivery);
                    window.early.insert(offset, page);
                }
                Err(e) => {
                    delivery.stats.error = Some(page_error(offset, e));
                    return;
                }
            }
            if !Self::deliver_ready(&mut window, delivery).await {
                return;
            }
        }
    }

    /// Fits the window to the byte budget: as many pages as the largest one seen fits in
    /// it, at least one, at most `concurrency`.
    fn narrow(&self, window: &mut Window, concurrency: usize, delivery: &mut Delivery) {
        let stats = &mut delivery.stats;
        window.width = window_width(self.window_bytes, stats.largest_page_bytes, concurrency);
        if window.width < concurrency {
            stats.narrowed_to = Some(
                stats
                    .narrowed_to
                    .map_or(window.width, |n| n.min(window.width)),
            );
        }
    }

    /// Starts requests up to the window's width in flight, never more than that many pages
    /// ahead of the next one to deliver (which bounds the pages held back: requested and
    /// not yet delivered are at most `width` together).
    fn fill(&self, window: &mut Window) {
        let width = window.width;
        let horizon = window
            .next_delivery
            .saturating_add(window.step.saturating_mul(width as u64));
        while window.tasks.len() < width
            && window.next_request < window.end
            && window.next_request < horizon
        {
            let offset = window.next_request;
            let (client, filter, limit) =
                (self.client.clone(), self.filter.clone(), self.page_size);
            window
                .tasks
                .spawn(async move { (offset, client.list_page(&filter, offset, limit).await) });
            window.next_request += window.step;
        }
    }

    /// Delivers the pages that are next in offset order; `false` once the listing is over.
    async fn deliver_ready(window: &mut Window, delivery: &mut Delivery) -> bool {
        while let Some(page) = window.early.remove(&window.next_delivery) {
            if let Some(total) = page.total {
                // A grown total extends the listing; a shrunk one ends at a short page.
                window.end = window.end.max(total).min(window.cap);
            }
            let reached = window.next_delivery.saturating_add(page.users.len() as u64);
            let full = page.users.len() as u64 >= window.step;
            if full && page.total.map_or(true, |total| reached > total) {
                // A full page past the total may have a next one, whatever the total says.
                window.end = window.end.max(reached.saturating_add(1)).min(window.cap);
            }
            if !delivery.take(page, window.next_delivery, window.step).await {
                return false;
            }
            window.next_delivery += window.step;
        }
        true
    }
}

impl Delivery {
    fn may_continue(&self) -> bool {
        self.stats.error.is_none() && !self.stats.interrupted && !self.stats.output_closed
    }

    fn note_size(&mut self, page: &Page) {
        self.stats.largest_page_bytes = self.stats.largest_page_bytes.max(page.body_bytes);
    }

    /// The total grew since the first page: users added at the front shift those already
    /// listed onto later pages, so a page of repeats is no sign of a broken API.
    fn total_grew(&self) -> bool {
        matches!(
            (self.stats.first_total, self.stats.last_total),
            (Some(first), Some(last)) if last > first
        )
    }

    /// Notes the `total` a page gave, and whether it changed since the first.
    fn note_total(&mut self, total: Option<u64>) {
        if let Some(total) = total {
            if self.stats.first_total.is_some_and(|first| first != total) {
                self.stats.total_changed = true;
            }
            self.stats.last_total = Some(total);
        }
    }

    /// Sends the users not listed before; how many were new to this pass, or `None` once
    /// the output is gone or the cap is reached.
    async fn deliver(&mut self, users: Vec<SshUser>, offset: u64, step: u64) -> Option<u64> {
        let mut fresh = 0u64;
        // A page larger than the step overlaps the next by its own size: its repeats are no
        // sign of a shift.
        let oversized = users.len() as u64 > step;
        for user in users {
            let new = self.pass.note_user(&user.uuid);
            if !new && !oversized {
                self.pass.note_repeat(offset, &user.uuid);
            }
            fresh += u64::from(new);
            if self.stats.users >= self.max_users {
                self.pass.cap_reached = true;
                return None;
            }
            if !self.seen.insert(user.uuid.clone()) {
                self.stats.duplicates += u64::from(!self.rechecking);
                continue;
            }
            if self.out.send(user).await.is_err() {
                self.stats.output_closed = true;
                return None;
            }
            self.stats.users += 1;
            self.stats.recovered += u64::from(self.rechecking);
        }
        Some(fresh)
    }

    /// Counts a page (requested at `offset`) and sends its new users; `false` when the
    /// listing should stop: after an empty or short page (nothing lies beyond it, whatever
    /// `total` said; before that total, the listing is incomplete), after a full page of
    /// users all listed before (an API that ignores `offset` serves the same page forever),
    /// or when the output is gone.
    async fn take(&mut self, page: Page, offset: u64, step: u64) -> bool {
        self.note_size(&page);
        self.stats.pages += 1;
        self.note_total(page.total);
        self.pass.note_total(page.total);
        let reached = page.offset.saturating_add(page.users.len() as u64);
        let last = (page.users.len() as u64) < step;
        if let Some(total) = page.total.filter(|t| !last && reached > *t) {
            self.pass.past_total = Some((total, reached));
        }
        // No page is requested past the cap: a full one reaching it may not be the last.
        self.pass.cap_reached |= !last && reached >= self.max_users;
        // A total past the cap is implausible: no page is short of it.
        let short_of = self
            .stats
            .last_total
            .filter(|total| last && reached < *total && *total <= self.max_users);
        if short_of.is_some() {
            self.stats.ended_early_at = Some(page.offset);
        }
        let page_offset = page.offset;
        let Some(fresh) = self.deliver(page.users, offset, step).await else {
            return false;
        };
        if let Some(total) = short_of {
            self.stats.error = Some(EquinixError::EndedEarly {
                offset: page_offset,
                listed: self.stats.users,
                total,
            });
            return false;
        }
        // An API that serves more than `limit` per page repeats itself on the following
        // pages: once every user it counts is delivered, a page of repeats is the end of a
        // complete listing, not a sign that `offset` is ignored.
        let complete = self
            .stats
            .last_total
            .is_some_and(|total| self.pass.seen.len() as u64 >= total);
        if !last && fresh == 0 && complete {
            return false;
        }
        // The second walk expects repeats; it ends at the total it follows.
        if !last && fresh == 0 && !self.rechecking && !self.total_grew() {
            self.stats.error = Some(EquinixError::NoProgress {
                offset,
                listed: self.stats.users,
                total: self.stats.last_total,
            });
            return false;
        }
        !last
    }
}

/// How many pages of `largest` bytes fit in `budget`: at least one, at most `concurrency`.
fn window_width(budget: usize, largest: usize, concurrency: usize) -> usize {
    (budget / largest.max(1)).clamp(1, concurrency.max(1))
}

fn page_error(offset: u64, source: EquinixError) -> EquinixError {
    EquinixError::Page {
        offset,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_as_many_pages_as_the_budget_fits() {
        const MIB: usize = 1024 * 1024;
        // Small pages: the page concurrency decides.
        assert_eq!(window_width(DEFAULT_WINDOW_BYTES, 30_000, 8), 8);
        // Pages at the 32 MiB body cap: two fit in 64 MiB.
        assert_eq!(window_width(DEFAULT_WINDOW_BYTES, 32 * MIB, 8), 2);
        assert_eq!(window_width(DEFAULT_WINDOW_BYTES, 20 * MIB, 8), 3);
        // A page larger than the whole budget still goes, one at a time.
        assert_eq!(window_width(MIB, 5 * MIB, 8), 1);
        assert_eq!(window_width(0, 100, 8), 1);
        // Before any page is seen, and with a nonsensical concurrency.
        assert_eq!(window_width(DEFAULT_WINDOW_BYTES, 0, 8), 8);
        assert_eq!(window_width(DEFAULT_WINDOW_BYTES, 100, 0), 1);
    }
}

//! The concurrent listing: the first page gives `total`, the remaining pages are fetched
//! several at a time and delivered in offset order as they complete, de-duplicated by uuid,
//! stopping at the first empty (or short) page. Memory is bounded by the window of pages in
//! flight, which is narrowed when pages are large so that it holds about a byte budget.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{EquinixClient, EquinixError, ListFilter, Page, SshUser};
use crate::shutdown::Shutdown;

/// The pages of a listing held at once (requested, or received ahead of their turn) take
/// about this many bytes at most, whatever the page concurrency asks: one page can be as
/// large as the 32 MiB body cap, and eight of those would be a quarter of a GiB.
pub const DEFAULT_WINDOW_BYTES: usize = 64 * 1024 * 1024;

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
    /// The total changed, so the listing was walked a second time, one page at a time.
    pub rechecked: bool,
    /// Users found only by that second walk.
    pub recovered: u64,
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
    /// Request pages below this offset (the latest `total`).
    end: u64,
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
        }
    }

    /// Holds about `bytes` of pages at once (at least one page, whatever its size).
    pub fn with_window_bytes(mut self, bytes: usize) -> PageFetcher {
        self.window_bytes = bytes;
        self
    }

    /// Sends every user to `out` in offset order; ends at the first empty page, at `total`
    /// (following it when it grows), on a failed page, or when `shutdown` fires.
    ///
    /// Offset paging is not a snapshot: when the total changes, entries shift between pages.
    /// Concurrent pages can then miss a user that sequential paging would not (pages are
    /// served out of order), so a listing that saw the total change is walked once more, one
    /// page at a time, and users it had not delivered yet are added.
    pub async fn run(self, out: mpsc::Sender<SshUser>, shutdown: Shutdown) -> ListingStats {
        let mut delivery = Delivery {
            out,
            seen: HashSet::new(),
            stats: ListingStats::default(),
            rechecking: false,
        };
        self.pass(&mut delivery, self.concurrency, &shutdown).await;
        if delivery.stats.total_changed && self.concurrency > 1 && delivery.may_continue() {
            delivery.rechecking = true;
            delivery.stats.rechecked = true;
            self.pass(&mut delivery, 1, &shutdown).await;
        }
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
        let end = first.total.unwrap_or(u64::MAX);
        if delivery.take(first, 0, step).await {
            self.rest(step, end, concurrency, delivery, shutdown).await;
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
        step: u64,
        end: u64,
        concurrency: usize,
        delivery: &mut Delivery,
        shutdown: &Shutdown,
    ) {
        // Without a total, the pages are walked one at a time until one comes back short.
        let concurrency = if end == u64::MAX { 1 } else { concurrency };
        let mut window = Window {
            tasks: JoinSet::new(),
            early: BTreeMap::new(),
            next_request: step,
            next_delivery: step,
            step,
            end,
            width: concurrency,
        };
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
                window.end = window.end.max(total);
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

    /// Sends the users not listed before; how many, or `None` once the output is gone.
    async fn deliver(&mut self, users: Vec<SshUser>) -> Option<u64> {
        let mut fresh = 0u64;
        for user in users {
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
            fresh += 1;
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
        let reached = page.offset.saturating_add(page.users.len() as u64);
        let last = (page.users.len() as u64) < step;
        let short_of = self
            .stats
            .last_total
            .filter(|total| last && reached < *total);
        if short_of.is_some() {
            self.stats.ended_early_at = Some(page.offset);
        }
        let page_offset = page.offset;
        let Some(fresh) = self.deliver(page.users).await else {
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
            .is_some_and(|total| self.stats.users >= total);
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

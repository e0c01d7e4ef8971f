// Opens an sshfleet HTML report in Debian's headless Chromium (file://, fresh profile) and
// prints what a person would see as one JSON object on stdout; the Rust tests
// (tests/it/html_report.rs) assert on it. This script judges nothing itself.
//
//   node check-report.mjs REPORT.html [--site NAME] [--status NAME] [--change NAME]
//     [--standing LABEL] [--search TEXT] [--sort COLUMN] [--scroll FRACTION] [--screenshot PNG]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const file = resolve(args[0]);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const search = option("--search");
const screenshot = option("--screenshot");
const sort = option("--sort");
const executablePath = process.env.SSHFLEET_CHROMIUM || "/usr/bin/chromium";

const profile = mkdtempSync(join(tmpdir(), "sshfleet-chromium-"));
const out = { requests: [], dialogs: [], console_errors: [], page_errors: [] };
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("request", (r) => out.requests.push(r.url()));
  page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on("console", (m) => { if (m.type() === "error") { out.console_errors.push(m.text()); } });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));

  const url = pathToFileURL(file).href;
  out.url = url;
  const t0 = Date.now();
  await page.goto(url, { waitUntil: "load", timeout: 60000 });
  await page.waitForFunction(() => window.sshfleetReport && window.sshfleetReport.ready, null, { timeout: 60000 });
  out.ready_ms = Date.now() - t0;
  // What a person sees of the table: the rows that are drawn (checkVisibility) and lie
  // inside the list's scroll box, top to bottom, with the text of their cells. Attributes
  // (hidden, classes) are not consulted: only what the browser lays out and paints.
  const visibleRows = () => page.evaluate(() => {
    const box = document.getElementById("table-viewport");
    const outer = box.getBoundingClientRect();
    const top = outer.top + box.clientTop;
    const left = outer.left + box.clientLeft;
    const bottom = top + box.clientHeight;
    const right = left + box.clientWidth;
    const cell = (row, key) => row.querySelector(".c-" + key)?.textContent ?? null;
    return Array.from(box.querySelectorAll('[data-testid="device-row"]'))
      .map((row) => ({ row, r: row.getBoundingClientRect() }))
      .filter(({ row, r }) => row.checkVisibility({ opacityProperty: true, visibilityProperty: true, checkOpacity: true, checkVisibilityCSS: true })
        && r.height > 0 && r.width > 0
        && r.bottom > top && r.top < bottom && r.right > left && r.left < right)
      .sort((a, b) => a.r.top - b.r.top)
      .map(({ row, r }) => ({
        top: Math.round(r.top - top),
        text: row.innerText.trim(),
        serial: cell(row, "serial"),
        address: cell(row, "address"),
        name: cell(row, "name"),
        site: cell(row, "site"),
        status: cell(row, "status"),
        standing: cell(row, "standing"),
        change: cell(row, "change"),
      }));
  });
  const counted = () => page.evaluate(() => Number(document.getElementById("row-count").getAttribute("data-count")));
  const applied = () => page.evaluate(() => window.sshfleetReport.applied);
  // The rows in view and the count once the table has been filtered again.
  const view = async (before) => {
    await page.waitForFunction((n) => window.sshfleetReport.applied > n, before, { timeout: 30000 });
    return { count: await counted(), rows: await visibleRows() };
  };

  Object.assign(out, await page.evaluate(() => {
    const paint = performance.getEntriesByType("paint").find((p) => p.name === "first-contentful-paint");
    const value = (id) => document.querySelector(`[data-testid="${id}"]`)?.getAttribute("data-value");
    return {
      first_contentful_paint_ms: paint ? paint.startTime : null,
      setup_ms: window.sshfleetReport.setupMs,
      headline: {
        devices: value("headline-devices"),
        compliant: value("headline-compliant"),
        ssh_enabled: value("headline-ssh-enabled"),
        waived: value("headline-waived"),
        not_checked: value("headline-not-checked"),
        regressions: value("headline-regressions"),
      },
      headline_text: Array.from(document.querySelectorAll(".cards .card .v")).map((e) => e.textContent),
      site_groups: Array.from(document.querySelectorAll('[data-testid="site-bar"]')).map((g) => ({
        site: g.getAttribute("data-site"),
        total: Number(g.getAttribute("data-total")),
      })),
      trend_points: Number(document.querySelector('[data-testid="trend-chart"]')?.getAttribute("data-points") || 0),
      drift_counts: Object.fromEntries(Array.from(document.querySelectorAll('[data-testid="drift-counts"] [data-change]'))
        .map((c) => [c.getAttribute("data-change"), Number(c.getAttribute("data-count"))])),
      row_count: Number(document.querySelector('[data-testid="row-count"]').getAttribute("data-count")),
      rows_in_dom: document.querySelectorAll('[data-testid="device-row"]').length,
      script_elements: document.scripts.length,
      // The host-key section as it is drawn: its table rows' cell texts (null without one).
      host_keys: (() => {
        const section = document.querySelector('[data-testid="host-keys"]');
        if (!section || !section.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) { return null; }
        const rows = (id) => Array.from(section.querySelectorAll(`[data-testid="${id}"] tbody tr`))
          .filter((tr) => tr.checkVisibility() && tr.getBoundingClientRect().height > 0)
          .map((tr) => Array.from(tr.cells).map((c) => c.innerText.trim()));
        return { text: section.innerText, shared: rows("shared-host-key-list"), changed: rows("changed-host-key-list") };
      })(),
      advisories: (() => {
        const section = document.querySelector("#advisories");
        if (!section) { return null; }
        const box = section.getBoundingClientRect();
        return {
          visible: box.width > 0 && box.height > 0,
          text: section.innerText,
          rows: Array.from(section.querySelectorAll("[data-advisory]"))
            .map((r) => Array.from(r.cells).map((c) => c.innerText.trim())),
        };
      })(),
      // The fleet view's tables: the rows drawn on the page, with their text.
      ...Object.fromEntries(["fleet-site", "missing-site"].map((id) => [id.replace("-", "_") + "s",
        Array.from(document.querySelectorAll(`[data-testid="${id}"]`))
          .filter((row) => row.checkVisibility({ opacityProperty: true, visibilityProperty: true }) && row.getBoundingClientRect().height > 0)
          .map((row) => ({ site: row.getAttribute("data-site"), text: row.innerText.trim() }))])),
    };
  }));
  out.initial = { count: out.row_count, rows: await visibleRows() };
  out.names_in_view = out.initial.rows.map((r) => r.name);

  // Each filter as a person sets it: the option whose label starts with the value given.
  const filters = { site: "#filter-site", status: "#filter-status", change: "#filter-change", standing: "#filter-compliance" };
  out.filters = {};
  for (const [key, selector] of Object.entries(filters)) {
    const wanted = option("--" + key);
    if (wanted === undefined) { continue; }
    const label = (key === "site" && wanted === "" ? "(no site)" : wanted) + " (";
    const value = await page.evaluate(([sel, l]) => {
      const opt = Array.from(document.querySelector(sel).options).find((o) => o.textContent.startsWith(l));
      return opt ? opt.value : null;
    }, [selector, label]);
    if (value === null) { out.filters[key] = { found: false }; continue; }
    const before = await applied();
    const t = Date.now();
    await page.selectOption(selector, value);
    out.filters[key] = { found: true, ...(await view(before)), ms: Date.now() - t };
    await page.click("#filter-reset");
  }
  // As the earlier tests read it.
  if (out.filters.site) {
    const f = out.filters.site;
    out.site_filter = f.found
      ? { found: true, ms: f.ms, count: f.count, sites_in_view: Array.from(new Set(f.rows.map((r) => r.site))), rows_in_view: f.rows.length }
      : { found: false };
  }

  if (search !== undefined) {
    const before = await applied();
    const t = Date.now();
    await page.fill("#search", search);
    const seen = await view(before);
    out.search = { count: seen.count, rows: seen.rows, serials: seen.rows.map((r) => r.serial), ms: Date.now() - t };
    await page.click("#filter-reset");
  }

  if (sort !== undefined) {
    const sorted = async () => {
      const before = await applied();
      await page.click(`button[data-col="${sort}"]`);
      return view(before);
    };
    const ascending = await sorted();
    const descending = await sorted();
    out.sort = {
      ascending: ascending.rows.length ? ascending.rows[0][sort] : null,
      descending: descending.rows.length ? descending.rows[0][sort] : null,
      ascending_rows: ascending.rows,
      descending_rows: descending.rows,
    };
    await sorted();
  }

  // Scrolled half way down the list, as with the wheel: the rows there, and only they.
  if (args.includes("--scroll")) {
    const fraction = Number(option("--scroll")) || 0.5;
    const top = await visibleRows();
    await page.evaluate((f) => {
      const box = document.getElementById("table-viewport");
      box.scrollTop = Math.round((box.scrollHeight - box.clientHeight) * f);
    }, fraction);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    out.scroll = {
      scroll_top: await page.evaluate(() => document.getElementById("table-viewport").scrollTop),
      rows: await visibleRows(),
      top_rows: top,
    };
    await page.evaluate(() => { document.getElementById("table-viewport").scrollTop = 0; });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  }

  // Before the hovering below scrolls the table.
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
    out.screenshot = screenshot;
  }

  // Hover over every row in view and every name cell: an injected handler would fire.
  for (const row of await page.locator('[data-testid="device-row"]').all()) {
    await row.hover({ timeout: 2000 }).catch(() => {});
    if (out.requests.length > 50) { break; }
  }

  // The printed page must not depend on the script either.
  await page.emulateMedia({ media: "print" });
  Object.assign(out, await page.evaluate(() => {
    const findings = document.querySelector('[data-testid="printed-findings"]');
    return {
      print_table_hidden: getComputedStyle(document.querySelector(".table")).display === "none",
      printed_findings: findings && getComputedStyle(findings).display !== "none"
        ? findings.querySelectorAll("tbody tr").length : 0,
    };
  }));
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  if (context) { await context.close().catch(() => {}); }
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out) + "\n");

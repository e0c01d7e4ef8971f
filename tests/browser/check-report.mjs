// Opens an sshfleet HTML report in Debian's headless Chromium (file://, fresh profile) and
// prints what a person would see as one JSON object on stdout; the Rust tests
// (tests/it/html_report.rs) assert on it. This script judges nothing itself.
//
//   node check-report.mjs REPORT.html [--site NAME] [--search TEXT] [--sort COLUMN] [--screenshot PNG]

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
const site = option("--site");
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
      rows_in_dom: document.querySelectorAll('[data-testid="device-row"]:not([hidden])').length,
      names_in_view: Array.from(document.querySelectorAll('[data-testid="device-row"]:not([hidden]) .c-name span')).map((e) => e.textContent),
      script_elements: document.scripts.length,
    };
  }));

  if (site !== undefined) {
    out.site_filter = await page.evaluate((name) => {
      const select = document.getElementById("filter-site");
      const label = (name === "" ? "(no site)" : name) + " (";
      const opt = Array.from(select.options).find((o) => o.textContent.startsWith(label));
      if (!opt) { return { found: false }; }
      const t = performance.now();
      select.value = opt.value;
      select.dispatchEvent(new Event("change"));
      const ms = performance.now() - t;
      const rows = document.querySelectorAll('[data-testid="device-row"]:not([hidden])');
      const sites = new Set(Array.from(rows).map((r) => r.querySelector(".c-site span").textContent));
      return {
        found: true,
        ms,
        count: Number(document.getElementById("row-count").getAttribute("data-count")),
        sites_in_view: Array.from(sites),
        rows_in_dom: rows.length,
      };
    }, site);
    await page.click("#filter-reset");
  }

  if (search !== undefined) {
    const before = await page.evaluate(() => window.sshfleetReport.applied);
    const t = Date.now();
    await page.fill("#search", search);
    await page.waitForFunction((n) => window.sshfleetReport.applied > n, before, { timeout: 30000 });
    out.search = await page.evaluate(() => ({
      count: Number(document.getElementById("row-count").getAttribute("data-count")),
      serials: Array.from(document.querySelectorAll('[data-testid="device-row"]:not([hidden])')).map((r) => r.getAttribute("data-serial")),
    }));
    out.search.ms = Date.now() - t;
    await page.click("#filter-reset");
  }

  if (sort !== undefined) {
    const firstOf = () => page.evaluate((key) => {
      const rows = Array.from(document.querySelectorAll('[data-testid="device-row"]:not([hidden])'));
      rows.sort((a, b) => new DOMMatrix(getComputedStyle(a).transform).f - new DOMMatrix(getComputedStyle(b).transform).f);
      return rows.length ? rows[0].querySelector(".c-" + key + " span").textContent : null;
    }, sort);
    await page.click(`button[data-col="${sort}"]`);
    const ascending = await firstOf();
    await page.click(`button[data-col="${sort}"]`);
    out.sort = { ascending, descending: await firstOf() };
    await page.click(`button[data-col="${sort}"]`);
  }

  // Before the hovering below scrolls the table.
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
    out.screenshot = screenshot;
  }

  // Hover over every row in view and every name cell: an injected handler would fire.
  for (const row of await page.locator('[data-testid="device-row"]:not([hidden])').all()) {
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

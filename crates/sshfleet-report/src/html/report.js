// The device table of an sshfleet HTML report: data embedded once as columns, filtered
// and sorted in place, and only the rows in view are in the DOM (virtual scrolling), so a
// report of 100,000 devices stays responsive. Text from devices and inventories is only
// ever set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var started = performance.now();
  var source = document.getElementById("device-data");
  var viewport = document.getElementById("table-viewport");
  if (!source || !viewport) { return; }
  var doc = JSON.parse(source.textContent);
  var C = doc.columns;
  var n = doc.count;
  var ROW_H = 34;
  var OVERSCAN = 8;
  var spacer = document.getElementById("table-spacer");
  var counter = document.getElementById("row-count");
  var header = document.getElementById("table-head");
  var cols = Array.prototype.map.call(header.querySelectorAll("[data-col]"), function (h) {
    return h.getAttribute("data-col");
  });
  var controls = {
    site: document.getElementById("filter-site"),
    status: document.getElementById("filter-status"),
    change: document.getElementById("filter-change"),
    standing: document.getElementById("filter-compliance"),
    search: document.getElementById("search")
  };
  var fmt = new Intl.NumberFormat("en-US");
  var shown = new Uint32Array(n);
  var shownLen = 0;
  var haystack = null;
  var ranks = {};
  var sortKey = null;
  var sortDir = 1;
  var pool = [];
  var spare = [];
  var applied = 0;

  function countBy(column, size) {
    var counts = new Array(size).fill(0);
    for (var i = 0; i < n; i++) {
      var v = column[i];
      if (v >= 0) { counts[v]++; }
    }
    return counts;
  }

  function fillSelect(select, names, counts, label) {
    var order = names.map(function (_, i) { return i; });
    if (select === controls.site) {
      order.sort(function (a, b) { return names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0; });
    }
    order.forEach(function (i) {
      if (!counts[i]) { return; }
      var opt = document.createElement("option");
      opt.value = String(i);
      opt.textContent = (label ? label(i) : names[i]) + " (" + fmt.format(counts[i]) + ")";
      select.appendChild(opt);
    });
  }

  fillSelect(controls.site, doc.sites, countBy(C.site, doc.sites.length), function (i) {
    return doc.sites[i] === "" ? "(no site)" : doc.sites[i];
  });
  fillSelect(controls.status, doc.statuses, countBy(C.status, doc.statuses.length));
  fillSelect(controls.change, doc.changes, countBy(C.change, doc.changes.length));
  fillSelect(controls.standing, doc.standings, countBy(C.standing, doc.standings.length), function (i) {
    return doc.standing_labels[i];
  });

  function selected(select) {
    return select.value === "" ? -1 : Number(select.value);
  }

  function buildHaystack() {
    haystack = new Array(n);
    for (var i = 0; i < n; i++) {
      haystack[i] = (C.serial[i] + "\u0000" + C.address[i] + "\u0000" + C.name[i]).toLowerCase();
    }
  }

  function text(key, i) {
    switch (key) {
      case "serial": return C.serial[i];
      case "address": return C.address[i];
      case "name": return C.name[i];
      case "site": return doc.sites[C.site[i]] === "" ? "(no site)" : doc.sites[C.site[i]];
      case "status": return doc.statuses[C.status[i]];
      case "ssh": return C.ssh[i] === 1 ? "enabled" : C.ssh[i] === 0 ? "disabled" : "";
      case "standing": return doc.standing_labels[C.standing[i]];
      case "change": return C.change[i] >= 0 ? doc.changes[C.change[i]] : "";
      case "waiver": return C.waiver[i] >= 0 ? doc.waivers[C.waiver[i]] : "";
      case "error": return C.error[i] >= 0 ? doc.errors[C.error[i]] : "";
      case "exposure": return C.exposure[i] >= 0 ? doc.exposures[C.exposure[i]] : "";
      case "action": return C.action[i] >= 0 ? doc.actions[C.action[i]] : "";
      default: return "";
    }
  }

  // The class of a cell's badge: the value itself, for the columns shown as badges.
  function badge(key, i) {
    switch (key) {
      case "status": return C.status[i] === 0 ? "b-ok" : "b-bad";
      case "ssh": return C.ssh[i] === 1 ? "b-on" : C.ssh[i] === 0 ? "b-off" : "";
      case "standing": return "b-" + doc.standings[C.standing[i]];
      case "change": return C.change[i] >= 0 ? "b-ch-" + doc.changes[C.change[i]] : "";
      default: return "";
    }
  }

  // A rank per row for a column (its position in the column's sorted values), computed
  // once per column, so that sorting compares integers.
  function rankOf(key) {
    if (ranks[key]) { return ranks[key]; }
    var values = new Array(n);
    for (var i = 0; i < n; i++) { values[i] = text(key, i); }
    var order = new Uint32Array(n);
    for (i = 0; i < n; i++) { order[i] = i; }
    var collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
    order.sort(function (a, b) { return collator.compare(values[a], values[b]); });
    var rank = new Uint32Array(n);
    var r = 0;
    for (i = 0; i < n; i++) {
      if (i > 0 && values[order[i]] !== values[order[i - 1]]) { r = i; }
      rank[order[i]] = r;
    }
    ranks[key] = rank;
    return rank;
  }

  function apply() {
    var site = selected(controls.site);
    var status = selected(controls.status);
    var change = selected(controls.change);
    var standing = selected(controls.standing);
    var q = controls.search.value.trim().toLowerCase();
    if (q && !haystack) { buildHaystack(); }
    var len = 0;
    for (var i = 0; i < n; i++) {
      if (site >= 0 && C.site[i] !== site) { continue; }
      if (status >= 0 && C.status[i] !== status) { continue; }
      if (change >= 0 && C.change[i] !== change) { continue; }
      if (standing >= 0 && C.standing[i] !== standing) { continue; }
      if (q && haystack[i].indexOf(q) < 0) { continue; }
      shown[len++] = i;
    }
    shownLen = len;
    if (sortKey) {
      var rank = rankOf(sortKey);
      var view = shown.subarray(0, len);
      var dir = sortDir;
      view.sort(function (a, b) { return (rank[a] - rank[b]) * dir || a - b; });
    }
    counter.textContent = len === n
      ? fmt.format(n) + " devices"
      : "Showing " + fmt.format(len) + " of " + fmt.format(n) + " devices";
    counter.setAttribute("data-count", String(len));
    spacer.style.height = (len * ROW_H) + "px";
    viewport.scrollTop = 0;
    draw();
    applied++;
    if (window.sshfleetReport) { window.sshfleetReport.applied = applied; }
  }

  function makeRow() {
    var row = document.createElement("div");
    row.className = "tr";
    row.setAttribute("role", "row");
    row.setAttribute("data-testid", "device-row");
    cols.forEach(function (key) {
      var cell = document.createElement("div");
      cell.className = "td c-" + key;
      cell.setAttribute("role", "cell");
      var span = document.createElement("span");
      cell.appendChild(span);
      row.appendChild(cell);
    });
    return row;
  }

  function draw() {
    var top = viewport.scrollTop;
    var first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    var visible = Math.ceil(viewport.clientHeight / ROW_H) + 2 * OVERSCAN;
    var last = Math.min(shownLen, first + visible);
    var needed = Math.max(0, last - first);
    // The DOM holds exactly the rows drawn: rows beyond them are taken out (and kept for
    // reuse), never merely marked hidden, so that no row from an earlier view stays on screen.
    while (pool.length < needed) {
      var added = spare.pop() || makeRow();
      spacer.appendChild(added);
      pool.push(added);
    }
    while (pool.length > needed) {
      var removed = pool.pop();
      spacer.removeChild(removed);
      spare.push(removed);
    }
    for (var p = 0; p < needed; p++) {
      var row = pool[p];
      var k = first + p;
      var i = shown[k];
      row.style.transform = "translateY(" + (k * ROW_H) + "px)";
      row.setAttribute("data-serial", C.serial[i]);
      row.className = k % 2 ? "tr odd" : "tr";
      for (var c = 0; c < cols.length; c++) {
        var key = cols[c];
        var span = row.children[c].firstChild;
        var value = text(key, i);
        span.textContent = value;
        span.className = badge(key, i) ? "badge " + badge(key, i) : "";
        if (key === "error" || key === "name" || key === "waiver") { row.children[c].title = value; }
      }
    }
  }

  var frame = 0;
  viewport.addEventListener("scroll", function () {
    if (!frame) { frame = requestAnimationFrame(function () { frame = 0; draw(); }); }
  });
  window.addEventListener("resize", draw);
  ["site", "status", "change", "standing"].forEach(function (k) {
    controls[k].addEventListener("change", apply);
  });
  var typing = 0;
  controls.search.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(apply, n > 20000 ? 150 : 0);
  });
  document.getElementById("filter-reset").addEventListener("click", function () {
    ["site", "status", "change", "standing"].forEach(function (k) { controls[k].value = ""; });
    controls.search.value = "";
    apply();
  });
  Array.prototype.forEach.call(header.querySelectorAll("button[data-col]"), function (button) {
    button.addEventListener("click", function () {
      var key = button.getAttribute("data-col");
      sortDir = sortKey === key ? -sortDir : 1;
      sortKey = key;
      Array.prototype.forEach.call(header.querySelectorAll("button[data-col]"), function (b) {
        b.setAttribute("aria-sort", b === button ? (sortDir > 0 ? "ascending" : "descending") : "none");
      });
      apply();
    });
  });
  // Links from the drift and site sections set a filter on the table.
  Array.prototype.forEach.call(document.querySelectorAll("[data-filter-site]"), function (a) {
    a.addEventListener("click", function () {
      controls.site.value = a.getAttribute("data-filter-site");
      apply();
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-filter-change]"), function (a) {
    a.addEventListener("click", function () {
      controls.change.value = a.getAttribute("data-filter-change");
      apply();
    });
  });
  document.documentElement.classList.add("js");
  apply();
  // For people and tests: whether the table is up, and how many times it was filtered.
  window.sshfleetReport = { ready: true, devices: n, setupMs: performance.now() - started, applied: applied };
})();

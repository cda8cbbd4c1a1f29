// crossmargin dashboard: draws the charts from the JSON the server rendered into the page, loads
// the slow figures (compare, liquidation curve) from the dashboard's JSON API, and keeps the page
// live from the WebSocket (/dashboard/ws): every event of the venue pushes fresh figures.
"use strict";
(() => {
  const body = document.body;
  const prefix = body.dataset.prefix || "/dashboard";
  const finite = (v) => v !== null && v !== undefined && Number.isFinite(Number(v));
  const usd = (v) => (finite(v) ? Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : "—");
  const ratio = (v) => (finite(v) ? (100 * v).toFixed(1) + " %" : "—");
  const charts = {};

  const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);
  const data = (name) => {
    const el = document.getElementById("data-" + name);
    return el ? JSON.parse(el.textContent) : null;
  };
  function setFigure(id, value, text) {
    const el = byTestId(id);
    if (!el) return;
    el.dataset.value = value === null || value === undefined ? "" : String(value);
    el.textContent = text === undefined ? usd(value) : text;
  }
  function draw(name, option) {
    const el = document.querySelector(`[data-chart="${name}"]`);
    if (!el || !window.echarts) return;
    let chart = charts[name];
    if (!chart) {
      chart = echarts.init(el);
      charts[name] = chart;
    }
    const legend = option.legend ? { legend: Object.assign({ top: 0 }, option.legend) } : {};
    // Room above the plot for the legend and the axis name, so they never overlap.
    const grid = { left: 64, right: 24, top: option.legend ? 64 : 40, bottom: 48, containLabel: true };
    chart.setOption(Object.assign({ animation: false, grid }, option, legend), true);
    el.dataset.drawn = "true";
  }
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  const money = { type: "value", axisLabel: { formatter: (v) => Number(v).toLocaleString("en-US") } };
  function td(text, value, cls = "num") {
    const cell = document.createElement("td");
    cell.className = cls;
    cell.textContent = text;
    if (value !== undefined && value !== null) cell.dataset.value = String(value);
    return cell;
  }
  function escapeText(text) {
    const span = document.createElement("span");
    span.textContent = text;
    return span.innerHTML;
  }

  // -- charts --------------------------------------------------------------------------------
  const builders = {
    histogram(h) {
      draw("histogram", {
        tooltip: {},
        xAxis: { type: "category", data: h.labels, name: "MM / equity", nameLocation: "middle", nameGap: 32 },
        yAxis: { type: "value", name: "accounts", minInterval: 1 },
        series: [{ type: "bar", data: h.counts, itemStyle: { color: "#0b5cad" } }],
      });
    },
    exposure(rows) {
      draw("exposure", {
        tooltip: { trigger: "axis" },
        legend: {},
        xAxis: { type: "category", data: rows.map((r) => r.asset) },
        yAxis: money,
        series: [
          { name: "value", type: "bar", data: rows.map((r) => r.value_usd) },
          { name: "after haircut", type: "bar", data: rows.map((r) => r.value_after_haircut_usd) },
        ],
      });
    },
    curve(c) {
      draw("curve", {
        tooltip: { trigger: "axis" },
        legend: {},
        xAxis: { type: "category", data: c.moves.map((m) => (m > 0 ? "+" : "") + Math.round(m * 100) + " %"), name: "move of the underlying", nameLocation: "middle", nameGap: 32 },
        yAxis: Object.assign({ name: "notional under MM, USD" }, money),
        series: c.series.map((s) => ({ name: s.underlying, type: "line", step: "middle", data: s.notional_usd })),
      });
    },
    levels(levels) {
      if (!levels || !levels.length) return;
      draw("levels", {
        tooltip: { trigger: "axis", valueFormatter: (v) => ratio(v) },
        legend: {},
        xAxis: { type: "category", data: levels.map((l) => l.underlying) },
        yAxis: { type: "value", name: "distance from today's index", axisLabel: { formatter: (v) => Math.round(v * 100) + " %" } },
        series: [
          { name: "liquidation", type: "bar", data: levels.map((l) => (finite(l.liquidation_price_usd) ? l.liquidation_price_usd / l.index_price_usd - 1 : null)) },
          { name: "bankruptcy", type: "bar", data: levels.map((l) => (finite(l.bankruptcy_price_usd) ? l.bankruptcy_price_usd / l.index_price_usd - 1 : null)) },
        ],
      });
    },
    waterfall(e) {
      const steps = e.positions.map((p) => [p.instrument_id, p.contribution_usd])
        .concat(e.collateral.filter((c) => c.contribution_usd !== 0).map((c) => [c.asset + " collateral", c.contribution_usd]));
      if (e.dampener_usd) steps.push(["dampener", -e.dampener_usd]);
      const labels = [], base = [], up = [], down = [];
      let level = 0;
      for (const [label, value] of steps) {
        labels.push(label);
        base.push(Math.min(level, level + value));
        up.push(value >= 0 ? value : null);
        down.push(value < 0 ? -value : null);
        level += value;
      }
      labels.push("grid requirement"); base.push(0); up.push(e.grid_usd); down.push(null);
      for (const [name, value] of Object.entries(e.addons || {})) {
        if (!value) continue;
        labels.push(name); base.push(level); up.push(value); down.push(null); level += value;
      }
      labels.push("initial margin"); base.push(0); up.push(e.initial_margin_usd); down.push(null);
      draw("waterfall", {
        tooltip: { trigger: "axis", valueFormatter: usd },
        xAxis: { type: "category", data: labels, axisLabel: { interval: 0, rotate: 30 } },
        yAxis: money,
        series: [
          { type: "bar", stack: "w", data: base, itemStyle: { color: "transparent" }, tooltip: { show: false } },
          { name: "adds", type: "bar", stack: "w", data: up, itemStyle: { color: "#b42318" } },
          { name: "offsets", type: "bar", stack: "w", data: down, itemStyle: { color: "#1a7f37" } },
        ],
      });
    },
    heatmap(h) {
      if (!h || !h.rows.length) return;
      const cells = [];
      let lo = 0, hi = 0;
      h.pnl_usd.forEach((row, y) => row.forEach((v, x) => {
        if (v === null) return;
        cells.push([x, y, v]);
        lo = Math.min(lo, v); hi = Math.max(hi, v);
      }));
      const m = Math.max(-lo, hi, 1);
      draw("heatmap", {
        tooltip: { formatter: (p) => `${h.rows[p.value[1]]}, ${h.columns[p.value[0]]}: ${usd(p.value[2])} USD` },
        grid: { left: 110, right: 24, top: 16, bottom: 90, containLabel: true },
        xAxis: { type: "category", data: h.columns, name: "price move", nameLocation: "middle", nameGap: 30 },
        yAxis: { type: "category", data: h.rows },
        visualMap: { min: -m, max: m, calculable: true, orient: "horizontal", left: "center", bottom: 0, inRange: { color: ["#b42318", "#f6f8fa", "#1a7f37"] } },
        series: [{ type: "heatmap", data: cells }],
      });
    },
    "stress-accounts"(rows) {
      if (!rows.length) return;
      draw("stress-accounts", {
        tooltip: { trigger: "axis", valueFormatter: usd },
        legend: {},
        xAxis: { type: "category", data: rows.map((r) => r.account_id) },
        yAxis: money,
        series: [
          { name: "equity before", type: "bar", data: rows.map((r) => r.equity_before_usd) },
          { name: "equity after", type: "bar", data: rows.map((r) => r.equity_after_usd) },
        ],
      });
    },
    cascade(rounds) {
      draw("cascade", {
        tooltip: { trigger: "axis" },
        legend: {},
        xAxis: { type: "category", data: rounds.map((r) => `${r.step + 1}.${r.round}`), name: "step.round", nameLocation: "middle", nameGap: 28 },
        yAxis: [Object.assign({ name: "USD" }, money), { type: "value", name: "accounts", minInterval: 1 }],
        series: [
          { name: "insurance fund", type: "line", data: rounds.map((r) => r.fund_usd) },
          { name: "bad debt", type: "line", data: rounds.map((r) => r.bad_debt_usd) },
          { name: "accounts liquidated", type: "bar", yAxisIndex: 1, data: rounds.map((r) => r.liquidated_accounts) },
        ],
      });
    },
    backtest(r) {
      const series = [{ name: "realised loss", type: "line", data: r.loss_usd, lineStyle: { color: "#1b1f24" }, itemStyle: { color: "#1b1f24" }, showSymbol: false }];
      for (const s of r.series) {
        series.push({ name: s.model, type: "line", data: s.margin_usd, showSymbol: false });
        series.push({ name: s.model + " exceeded", type: "scatter", symbolSize: 9, data: s.exceeded.map((i) => [i, r.loss_usd[i]]) });
      }
      draw("backtest", {
        tooltip: { trigger: "axis", valueFormatter: usd },
        legend: { type: "scroll" },
        xAxis: { type: "category", data: r.days },
        yAxis: money,
        dataZoom: [{ type: "inside" }],
        series,
      });
    },
  };
  function drawAll() {
    for (const el of document.querySelectorAll("[data-chart]")) {
      const name = el.dataset.chart;
      const given = data(name);
      if (given !== null && builders[name]) builders[name](given);
    }
  }

  // -- figures loaded after the page ---------------------------------------------------------
  async function getJson(url, options) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
    const payload = await response.json();
    if (!response.ok) throw new Error(typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail));
    return payload;
  }
  let curveLoading = null;
  function loadCurve() {
    // One request at a time; a change arriving meanwhile is picked up by the next message.
    const el = document.querySelector('[data-chart="curve"][data-src]');
    if (!el || curveLoading) return curveLoading || Promise.resolve();
    curveLoading = getJson(el.dataset.src).then(builders.curve).finally(() => { curveLoading = null; });
    return curveLoading;
  }
  async function loadCompare() {
    const table = byTestId("compare");
    if (!table) return;
    const status = byTestId("compare-status");
    try {
      const report = await getJson(table.dataset.src);
      const tbody = byTestId("compare-body");
      tbody.replaceChildren();
      for (const r of report.rows) {
        const tr = document.createElement("tr");
        tr.setAttribute("data-testid", "compare-row");
        tr.dataset.model = r.model;
        tr.dataset.preset = r.preset || "";
        const name = document.createElement("th");
        name.scope = "row";
        name.textContent = r.model;
        tr.append(name, td(r.preset || "book", undefined, ""), td(usd(r.initial_margin_usd), r.initial_margin_usd),
          td(usd(r.maintenance_margin_usd), r.maintenance_margin_usd), td(ratio(r.saving_vs_isolated_pct), r.saving_vs_isolated_usd));
        tbody.append(tr);
      }
      const skipped = (report.skipped || []).map((s) => `${s.model} (${s.presets.join(", ")}): ${s.reason}`);
      status.textContent = skipped.length ? "Not computed: " + skipped.join("; ") : "Every model, the engine's compare.";
      const labels = report.rows.map((r) => (r.preset ? `${r.model}:${r.preset}` : r.model));
      draw("compare", {
        tooltip: { trigger: "axis", valueFormatter: usd },
        legend: {},
        xAxis: { type: "category", data: labels, axisLabel: { interval: 0, rotate: 35 } },
        yAxis: money,
        series: [
          { name: "IM", type: "bar", data: report.rows.map((r) => r.initial_margin_usd) },
          { name: "MM", type: "bar", data: report.rows.map((r) => r.maintenance_margin_usd) },
        ],
      });
      table.dataset.loaded = "true";
    } catch (error) {
      status.textContent = "Could not compute: " + error.message;
    }
  }
  function bindWhatIf() {
    const form = byTestId("what-if");
    if (!form) return;
    const out = byTestId("what-if-result");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = new FormData(form);
      const price = fields.get("price");
      const request = { instrument_id: fields.get("instrument_id"), quantity: Number(fields.get("quantity")), price: price === "" ? null : Number(price) };
      try {
        const r = await getJson(form.dataset.src, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
        const rows = [["Equity", "equity_usd"], ["Initial margin", "initial_margin_usd"], ["Maintenance margin", "maintenance_margin_usd"], ["Available", "available_usd"]];
        out.innerHTML = `<table data-testid="what-if-table"><caption>${escapeText(r.instrument_id)} ${r.quantity} at ${r.price}</caption>` +
          "<thead><tr><th scope=\"col\">USD</th><th scope=\"col\" class=\"num\">Now</th><th scope=\"col\" class=\"num\">After the trade</th></tr></thead><tbody>" +
          rows.map(([label, key]) => `<tr><th scope="row">${label}</th><td class="num" data-value="${r.before[key]}">${usd(r.before[key])}</td>` +
            `<td class="num" data-testid="what-if-${key}" data-value="${r.after[key]}">${usd(r.after[key])}</td></tr>`).join("") + "</tbody></table>";
      } catch (error) {
        out.innerHTML = `<p class="error" role="alert">${escapeText(error.message)}</p>`;
      }
    });
  }

  // -- live ----------------------------------------------------------------------------------
  function renderQueue(queue) {
    const tbody = byTestId("queue-body");
    if (!tbody) return;
    tbody.replaceChildren();
    if (!queue.length) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "queue-empty");
      const cell = td("No account in margin call or liquidation.", undefined, "");
      cell.colSpan = 5;
      tr.append(cell);
      tbody.append(tr);
      return;
    }
    for (const r of queue) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "queue-row");
      tr.dataset.account = r.account_id;
      tr.dataset.status = r.status;
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = `${prefix}/accounts/${encodeURIComponent(r.account_id)}`;
      link.textContent = r.account_id;
      name.append(link);
      const status = document.createElement("td");
      const chip = document.createElement("span");
      chip.className = "status " + r.status;
      chip.textContent = r.status.replace("_", " ");
      status.append(chip);
      tr.append(name, status, td(usd(r.equity_usd), r.equity_usd), td(usd(r.maintenance_margin_usd), r.maintenance_margin_usd),
        td(finite(r.coverage) ? Number(r.coverage).toFixed(3) : "—", r.coverage));
      tbody.append(tr);
    }
  }
  const sig6 = (v) => (finite(v) ? Number(v).toLocaleString("en-US", { maximumSignificantDigits: 6 }) : "—");
  function rowHeader(text) {
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = text;
    return th;
  }
  // Rebuilds a table body from rows: one <tr data-testid=rowId data-key=...> per row, its cells
  // from `cells(row)` ([text, value] pairs after the header cell), or one `empty` line.
  function renderRows(table, rowId, key, rows, cells, empty) {
    const tbody = byTestId(table) && byTestId(table).tBodies[0];
    if (!tbody) return;
    tbody.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", rowId);
      tr.setAttribute("data-" + key[0], r[key[1]]);
      tr.append(rowHeader(r[key[1]]), ...cells(r).map(([text, value]) => td(text, value)));
      tbody.append(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const cell = td(empty, undefined, "");
      cell.colSpan = tbody.closest("table").tHead.rows[0].cells.length;
      tr.append(cell);
      tbody.append(tr);
    }
  }
  function renderExposure(rows) {
    renderRows("exposure", "exposure-row", ["asset", "asset"], rows, (r) => [
      [Number(r.balance).toLocaleString("en-US", { minimumFractionDigits: 4, maximumFractionDigits: 4 }), r.balance],
      [usd(r.value_usd), r.value_usd], [usd(r.value_after_haircut_usd), r.value_after_haircut_usd], [usd(r.haircut_usd), r.haircut_usd],
    ], "No collateral.");
  }
  function renderPositions(rows) {
    renderRows("positions", "position-row", ["instrument", "instrument_id"], rows, (p) => [
      [sig6(p.quantity), p.quantity], [sig6(p.entry_price), p.entry_price], [usd(p.value_usd), p.value_usd],
      [usd(p.unrealised_pnl_usd), p.unrealised_pnl_usd], [usd(p.initial_margin_usd), p.initial_margin_usd],
      [usd(p.maintenance_margin_usd), p.maintenance_margin_usd],
    ], "No positions.");
  }
  function renderCollateral(rows) {
    renderRows("collateral", "collateral-row", ["asset", "asset"], rows, (c) => [
      [sig6(c.balance), c.balance], [usd(c.value_usd), c.value_usd], [ratio(c.haircut), c.haircut],
    ], "No collateral.");
  }
  // Tables too costly to push on every event (the liquidation-price search) say when they are
  // older than the page's figures.
  function markStale(sequence) {
    for (const el of document.querySelectorAll("[data-as-of-sequence]")) {
      const note = el.querySelector("[data-stale-note]");
      if (!note) continue;
      const stale = Number(el.dataset.asOfSequence) < sequence;
      el.dataset.stale = stale ? "true" : "false";
      note.hidden = !stale;
    }
  }
  function applyHeadline(h) {
    setFigure("sequence", h.sequence, String(h.sequence));
    markStale(h.sequence);
    const asOf = byTestId("as-of");
    if (asOf) { asOf.textContent = h.as_of; asOf.setAttribute("datetime", h.as_of); }
  }
  function applyOverview(o) {
    const h = o.headline;
    setFigure("headline-equity", h.equity_usd);
    setFigure("headline-im", h.initial_margin_usd);
    setFigure("headline-mm", h.maintenance_margin_usd);
    setFigure("headline-insurance", h.insurance_fund_usd);
    setFigure("headline-bad-debt", h.bad_debt_usd);
    setFigure("headline-under-mm", h.below_maintenance, `${h.below_maintenance} of ${h.accounts}`);
    renderQueue(o.queue);
    builders.histogram(o.histogram);
    const bankrupt = byTestId("hist-bankrupt");
    if (bankrupt) bankrupt.textContent = String(o.histogram.bankrupt);
    renderExposure(o.exposure);
    builders.exposure(o.exposure);
    loadCurve().catch(() => {});
  }
  function applyAccount(a) {
    setFigure("account-equity", a.equity_usd);
    setFigure("account-im", a.initial_margin_usd);
    setFigure("account-mm", a.maintenance_margin_usd);
    setFigure("account-available", a.available_usd);
    setFigure("account-ratio", a.margin_ratio, ratio(a.margin_ratio));
    renderPositions(a.positions);
    renderCollateral(a.collateral);
    const status = byTestId("account-status");
    if (status) {
      status.dataset.value = a.status;
      status.innerHTML = `<span class="status ${escapeText(a.status)}">${escapeText(a.status.replace("_", " "))}</span>`;
    }
  }
  function connect() {
    const kind = body.dataset.live;
    if (!kind) return;
    const indicator = byTestId("live-status");
    const account = body.dataset.account;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${prefix}/ws` + (kind === "account" ? `?account=${encodeURIComponent(account)}` : "");
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => { indicator.textContent = "live"; indicator.dataset.state = "live"; });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      applyHeadline(message.headline);
      if (message.overview) applyOverview(message.overview);
      if (message.account) applyAccount(message.account);
    });
    socket.addEventListener("close", () => {
      indicator.textContent = "disconnected, reconnecting…";
      indicator.dataset.state = "closed";
      setTimeout(connect, 1000);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawAll();
    bindWhatIf();
    loadCurve().catch(() => {});
    loadCompare();
    connect();
    const indicator = byTestId("live-status");
    if (indicator && !body.dataset.live) indicator.textContent = "";
  });
})();

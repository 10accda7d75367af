// sustain web UI: the overview (/) and the model page (/models/<name>). Plain JS, charts with plotly.js.
// All view state lives in the URL query (range, refresh, version, window, feature), so links can be shared.
// A read token given once as ?token= is kept in this tab's sessionStorage and sent as a Bearer header.
"use strict";

(() => {
  const RANGES = [["15m", "last 15 minutes"], ["1h", "last hour"], ["6h", "last 6 hours"], ["24h", "last 24 hours"], ["7d", "last 7 days"]];
  const REFRESH = [["0", "off"], ["10", "10s"], ["30", "30s"], ["60", "60s"]];
  const { TOKEN_KEY, HttpError, api, h, $ } = window.sustainUi;
  const COLORS = { ok: "#1a7f37", warn: "#d98e04", alert: "#c62828", insufficient: "#c3c9d1", error: "#6f42c1" };
  const STATUS_TEXT = { ok: "OK", warn: "Warning", alert: "Alert" };
  const SERIES = ["#0b5cad", "#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e", "#a6761d", "#666666"];
  const EMPTY = "no events in this range yet";
  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  const page = document.body.dataset.page;
  let timer = null;
  let loads = 0;
  let last = null; // the last model payload (the feature picker re-renders without fetching)

  // -- URL state and token ----------------------------------------------------------------------
  function readState() {
    const q = new URLSearchParams(location.search);
    const range = RANGES.some(([v]) => v === q.get("range")) ? q.get("range") : "1h";
    const refresh = REFRESH.some(([v]) => v === q.get("refresh")) ? q.get("refresh") : "0";
    return { range, refresh, version: q.get("version") || "", window: q.get("window") || "", feature: q.get("feature") || "" };
  }

  function writeState(patch) {
    const q = new URLSearchParams(location.search);
    for (const [key, value] of Object.entries(patch)) {
      if (value === "" || value === null || value === undefined) q.delete(key);
      else q.set(key, value);
    }
    const search = q.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : "") + location.hash);
  }

  function adoptToken() {
    const q = new URLSearchParams(location.search);
    if (q.has("token")) {
      const token = q.get("token").trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      writeState({ token: "" }); // never leave the token in a URL someone may copy
    }
  }

  function badge(status, testid) {
    const text = STATUS_TEXT[status] || (status ? status : "No data");
    return h("span", { class: "badge " + (status || "none"), "data-testid": testid, "data-status": status || "none" }, text);
  }

  function showMessage(node) {
    const box = $("message");
    box.replaceChildren(node);
    box.hidden = false;
  }

  function clearMessage() {
    $("message").hidden = true;
  }

  function authMessage(err) {
    const text = err.status === 401
      ? "This dashboard needs a read token. Open it with ?token=<read token> in the address (the token is kept for this browser tab only)."
      : "This token may not read this dashboard. Open it with ?token=<read token>.";
    return h("div", {}, h("strong", {}, err.status === 401 ? "Sign-in needed. " : "Access denied. "), text,
      h("span", { class: "muted" }, " (the server said: " + err.message + ")"));
  }

  function fill(select, options, value) {
    select.replaceChildren(...options.map(([v, label]) => h("option", { value: v }, label)));
    select.value = options.some(([v]) => v === value) ? value : (options[0] ? options[0][0] : "");
  }

  const time = (s) => (s ? s.replace("Z", "") : s); // plotly dates are shown as given: UTC, labelled so
  const fmt = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toPrecision(digits));
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
  const local = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "–");

  let span = null; // [since, until] of the page's range, as plotted (UTC)

  function baseLayout(extra) {
    return Object.assign({
      margin: { l: 64, r: 24, t: 64, b: 48 },
      font: { family: "system-ui, sans-serif", size: 12, color: "#1c2430" },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      hovermode: "x unified",
      legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", xanchor: "left", font: { size: 11 } },
      xaxis: { type: "date", title: { text: "window start (UTC)" }, gridcolor: "#eef0f3", range: span },
      yaxis: { gridcolor: "#eef0f3", rangemode: "tozero" },
    }, extra);
  }

  // A chart's title sits above its legend, left-aligned, so neither hides the axis titles.
  const heading = (text) => ({ text, font: { size: 13 }, x: 0, xanchor: "left", y: 0.99, yanchor: "top", pad: { l: 4 } });

  // Plot into a chart container, or show its empty-state message when there is nothing to plot.
  function plot(id, traces, layout, emptyText) {
    const el = $(id);
    const empty = $(id + "-empty");
    if (!traces || traces.length === 0) {
      if (el.data) Plotly.purge(el);
      el.hidden = true;
      if (empty) {
        empty.textContent = emptyText || EMPTY;
        empty.hidden = false;
      }
      return;
    }
    if (empty) empty.hidden = true;
    el.hidden = false;
    Plotly.react(el, traces, layout, PLOT_CONFIG);
  }

  const hasValue = (xs) => (xs || []).some((v) => v !== null && v !== undefined);

  // -- pickers and refresh --------------------------------------------------------------------------
  function setupPickers(onChange) {
    const state = readState();
    fill($("range"), RANGES, state.range);
    fill($("refresh"), REFRESH, state.refresh);
    $("range").addEventListener("change", () => { writeState({ range: $("range").value }); onChange(); });
    $("refresh").addEventListener("change", () => { writeState({ refresh: $("refresh").value }); schedule(onChange); });
    schedule(onChange);
  }

  function schedule(load) {
    if (timer) clearInterval(timer);
    timer = null;
    const seconds = Number(readState().refresh);
    if (seconds > 0) timer = setInterval(load, seconds * 1000);
  }

  function stamp() {
    $("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  }

  async function guarded(load) {
    document.body.dataset.state = "loading";
    try {
      if (typeof Plotly === "undefined") throw new HttpError(503, "plotly.js could not be loaded, so no chart can be drawn");
      await load();
      clearMessage();
      stamp();
      loads += 1;
      document.body.dataset.loads = String(loads);
      document.body.dataset.state = "ready";
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 0;
      if (status === 401 || status === 403) {
        showMessage(authMessage(err));
        document.body.dataset.state = "auth";
      } else {
        showMessage(h("div", {}, h("strong", {}, "Could not load the data. "), err.message || String(err)));
        document.body.dataset.state = "error";
      }
    }
  }

  // -- overview -------------------------------------------------------------------------------------
  async function loadOverview() {
    const state = readState();
    const data = await api("/v1/dashboard/overview?range=" + encodeURIComponent(state.range));
    const root = $("models");
    const cards = [];
    for (const model of data.models) {
      for (const v of model.versions) cards.push(card(model, v, state, data.since, data.until));
    }
    root.replaceChildren(...cards.map((c) => c.node));
    $("models-empty").hidden = cards.length > 0;
    for (const c of cards) c.draw();
    showEngine(data.engine);
    $("inference").hidden = !data.inference;
    if (data.inference) await loadQueues();
  }

  // The engine's last pass: its phases, the slowest model (freshness) and the one furthest behind (lag).
  function showEngine(engine) {
    $("engine").hidden = !engine;
    if (!engine) return;
    const seconds = (x) => x.toLocaleString("en", { maximumFractionDigits: x < 10 ? 2 : 0 }) + " s";
    const slowest = engine.slowest;
    $("engine").querySelector('[data-testid="engine-slowest"]').textContent = slowest
      ? `${slowest.model}: computed ${seconds(slowest.freshness_seconds)} after its last event` : "no window computed yet";
    const behind = engine.most_behind;
    $("engine").querySelector('[data-testid="engine-behind"]').textContent = behind
      ? `${behind.model}: a window final ${seconds(behind.lag_seconds)} ago waits` : "none: every final window is computed";
    $("engine").querySelector('[data-testid="engine-pass"]').textContent =
      `${seconds(engine.pass_seconds)}; ${engine.models_processed.toLocaleString("en")} models computed, `
      + `${engine.models_transformed.toLocaleString("en")} with new data, ${engine.windows_computed.toLocaleString("en")} windows`;
    $("engine-phases").replaceChildren(...Object.entries(engine.phases).map(([phase, s]) =>
      h("tr", { "data-testid": "engine-phase-" + phase }, h("th", { scope: "row" }, phase), h("td", {}, seconds(s)))));
  }

  // The inference units' queues (only when the server was started with --redis). Redis being away is shown in
  // the panel, not as a page error: the models above are still worth reading.
  async function loadQueues() {
    let models = [];
    try {
      models = (await api("/v1/inference/status")).models;
      $("inference-error").hidden = true;
    } catch (err) {
      if (err instanceof HttpError && (err.status === 401 || err.status === 403)) throw err;
      $("inference-error").textContent = "The queues cannot be read now: " + err.message;
      $("inference-error").hidden = false;
    }
    const count = (n) => n.toLocaleString("en");
    $("inference-rows").replaceChildren(...models.map((m) =>
      h("tr", { "data-testid": "queue-" + m.model },
        h("th", { scope: "row" }, m.model),
        h("td", { "data-testid": "queue-units-" + m.model }, count(m.units)),
        h("td", { "data-testid": "queue-lag-" + m.model }, count(m.lag)),
        h("td", { "data-testid": "queue-pending-" + m.model }, count(m.pending)),
        h("td", { "data-testid": "queue-backlog-" + m.model }, count(m.backlog)),
        h("td", { "data-testid": "queue-dead-" + m.model },
          m.dead_letters > 0 ? badge("alert", "queue-dead-badge-" + m.model) : null, " ", count(m.dead_letters)))));
    $("inference-empty").hidden = models.length > 0 || !$("inference-error").hidden;
  }

  function latest(key, sparkline) {
    const ys = { events: sparkline.events, latency: sparkline.latency_p95_ms, drift: sparkline.drift_share }[key];
    for (let i = ys.length - 1; i >= 0; i -= 1) {
      if (ys[i] === null || (key === "events" && ys[i] === 0)) continue;
      return key === "drift" ? pct(ys[i]) : key === "latency" ? fmt(ys[i]) : String(ys[i]);
    }
    return "–";
  }

  function card(model, v, state, since, until) {
    const id = model.model + "-" + v.version;
    const link = "/models/" + encodeURIComponent(model.model) + "?" + new URLSearchParams({ range: state.range, refresh: state.refresh, version: v.version });
    const alert = v.last_alert;
    const sparks = [
      ["events", "events per window", v.sparkline.events, COLORS.ok, "bar"],
      ["latency", "p95 latency (ms)", v.sparkline.latency_p95_ms, SERIES[0], "scatter"],
      ["drift", "drifted share", v.sparkline.drift_share, COLORS.alert, "scatter"],
    ];
    const node = h("article", { class: "card", "data-testid": "card-" + id, "aria-labelledby": "title-" + id },
      h("h2", { id: "title-" + id },
        h("a", { href: link }, model.model + " ", h("span", { class: "muted" }, "v" + v.version)),
        badge(v.status, "status-" + id)),
      model.description ? h("p", { class: "muted" }, model.description) : null,
      (model.failures || []).map((f) => h("p", { class: "notice", "data-testid": "failure-" + model.model },
        h("strong", {}, f.stage + " failing: "), f.error)),
      h("dl", {},
        h("dt", {}, "Events, last hour"), h("dd", { "data-testid": "events-" + id }, v.events_last_hour.toLocaleString("en")),
        h("dt", {}, "Last alert"),
        h("dd", { "data-testid": "alert-" + id }, alert ? `${alert.rule} (${alert.status}) since ${local(alert.started_at)}` : "none")),
      h("div", { class: "sparks" }, sparks.map(([key, label]) =>
        h("figure", { class: "spark" },
          h("div", { class: "plot", id: `spark-${id}-${key}`, "data-testid": `spark-${id}-${key}`, role: "img", "aria-label": label }),
          h("figcaption", {}, label + ": ", h("strong", {}, latest(key, v.sparkline)))))));
    const draw = () => {
      const x = v.sparkline.window_starts.map(time);
      for (const [key, , y, color, type] of sparks) {
        const el = $(`spark-${id}-${key}`);
        if (!hasValue(y) || (key === "events" && !y.some((n) => n > 0))) {
          el.replaceChildren(h("span", { class: "muted" }, "no data"));
          continue;
        }
        const trace = type === "bar"
          ? { type: "bar", x, y, marker: { color }, name: key }
          : { type: "scatter", mode: "lines", x, y, line: { color, width: 1.5 }, connectgaps: false, name: key };
        Plotly.react(el, [trace], {
          margin: { l: 0, r: 0, t: 2, b: 2 }, height: 48, showlegend: false,
          xaxis: { visible: false, type: "date", range: [time(since), time(until)] },
          yaxis: { visible: false, rangemode: "tozero" },
          paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        }, { staticPlot: true, responsive: true });
      }
    };
    return { node, draw };
  }

  // -- model page -----------------------------------------------------------------------------------
  const modelName = () => decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

  async function loadModel() {
    const state = readState();
    const q = new URLSearchParams({ range: state.range });
    if (state.window) q.set("window", state.window);
    if (state.version) q.set("version", state.version);
    const data = await api("/v1/dashboard/models/" + encodeURIComponent(modelName()) + "?" + q);
    last = data;
    renderModel(data, state);
  }

  function renderModel(d, state) {
    document.title = d.model + " — sustain";
    $("model-name").textContent = d.model;
    $("crumb-model").textContent = d.model;
    $("crumb-models").href = "/?" + new URLSearchParams({ range: state.range, refresh: state.refresh });
    const status = badge(d.status, "model-status");
    status.id = "model-status";
    $("model-status").replaceWith(status);
    $("model-description").textContent = d.description || "";
    $("notice").hidden = !d.notice;
    $("notice").textContent = d.notice || "";
    fill($("version"), d.versions.map((v) => [v, "v" + v]), d.version);
    fill($("window"), [["", "auto (" + d.window + ")"], ...d.windows.map((w) => [w, w])], state.window);
    const x = d.window_starts.map(time);
    span = [time(d.since), time(d.until)];
    const none = d.traffic.total === 0;
    renderTraffic(d, x, none);
    renderLatency(d, x, none);
    renderDrift(d, x);
    renderDistribution(d, state.feature);
    renderPredictions(d, x, none);
    renderLabels(d, x);
    renderQuality(d, x);
    renderAlerts(d);
    $("spec").textContent = d.spec_yaml;
  }

  function renderTraffic(d, x, none) {
    const per = d.window;
    plot("chart-traffic", none ? null : [
      { type: "bar", name: "events", x, y: d.traffic.events, marker: { color: SERIES[0] } },
      { type: "bar", name: "model errors", x, y: d.traffic.errors, marker: { color: COLORS.alert } },
    ], baseLayout({
      title: heading(`Events per ${per} window (${d.traffic.total.toLocaleString("en")} in range)`),
      barmode: "overlay",
      yaxis: { title: { text: "events per window" }, rangemode: "tozero", gridcolor: "#eef0f3" },
    }));
  }

  function renderLatency(d, x, none) {
    const traces = ["p50", "p95", "p99"].map((name, i) => ({
      type: "scatter", mode: "lines+markers", name, x, y: d.latency[name], connectgaps: false,
      line: { color: SERIES[i], width: 2 }, marker: { size: 4 },
    }));
    plot("chart-latency", none || !hasValue(d.latency.p50) ? null : traces, baseLayout({
      title: heading("Latency quantiles per window"),
      yaxis: { title: { text: "latency (ms)" }, rangemode: "tozero", gridcolor: "#eef0f3" },
    }), none ? EMPTY : "no latencies logged in this range (send latency_ms with events)");
  }

  const LEVEL = { insufficient: 0, ok: 1, warn: 2, error: 2, alert: 3 };

  function renderDrift(d, x) {
    const dr = d.drift;
    const rows = dr.features.map((f, i) => (dr.roles[i] === "output" ? "output: " + f : f));
    const any = dr.statuses.some((row) => hasValue(row));
    const z = dr.statuses.map((row) => row.map((s) => (s === null ? null : LEVEL[s])));
    const text = dr.features.map((f, i) => dr.statuses[i].map((s, j) => (s === null ? "" :
      `${s}<br>effect ${fmt(dr.values[i][j])}<br>p ${fmt(dr.p_values[i][j], 2)}`)));
    const c = COLORS;
    const trace = {
      type: "heatmap", x, y: rows, z, zmin: -0.5, zmax: 3.5, customdata: dr.statuses, text, hoverongaps: false,
      hovertemplate: "%{y}<br>%{x}<br>%{text}<extra></extra>", xgap: 1, ygap: 1,
      colorscale: [[0, c.insufficient], [0.25, c.insufficient], [0.25, c.ok], [0.5, c.ok], [0.5, c.warn],
        [0.75, c.warn], [0.75, c.alert], [1, c.alert]],
      colorbar: { tickvals: [0, 1, 2, 3], ticktext: ["insufficient", "ok", "warn", "alert"], title: { text: "status" }, len: 0.9 },
    };
    const layout = baseLayout({
      title: heading(`Drift status per ${d.window} window`),
      hovermode: "closest",
      margin: { l: 140, r: 24, t: 40, b: 48 },
      yaxis: { title: { text: "" }, autorange: "reversed", automargin: true, type: "category" },
    });
    plot("chart-drift", any ? [trace] : null, layout,
      d.traffic.total === 0 ? EMPTY : "no drift computed in this range yet (it needs reference data: PUT /v1/models/<name>/reference)");
  }

  function renderDistribution(d, wanted) {
    const dist = d.distributions;
    const names = Object.keys(dist.features);
    const select = $("feature");
    const groups = [["feature", "Features"], ["output", "Outputs"]].map(([role, label]) =>
      h("optgroup", { label }, names.filter((n) => dist.features[n].role === role).map((n) => h("option", { value: n }, n))));
    select.replaceChildren(...groups.filter((g) => g.children.length));
    const feature = names.includes(wanted) ? wanted : names[0] || "";
    select.value = feature;
    const f = dist.features[feature];
    if (!f || !dist.window_start) {
      $("distribution-caption").textContent = "";
      plot("chart-distribution", null, {}, EMPTY);
      return;
    }
    const ref = dist.reference_version ? `reference of v${dist.reference_version} (${f.reference_n.toLocaleString("en")} values)` : "no reference uploaded";
    $("distribution-caption").textContent =
      `${feature}: window ${local(dist.window_start)} – ${local(dist.window_end)} (${f.current_n.toLocaleString("en")} values) vs ${ref}.`;
    const traces = [];
    let layout;
    if (f.categories) {
      const cats = f.categories.map((c) => (c === "__other__" ? "(other)" : c));
      if (f.reference) traces.push({ type: "bar", name: "reference", x: cats, y: f.reference, marker: { color: "#9aa5b1" } });
      if (f.current) traces.push({ type: "bar", name: "current window", x: cats, y: f.current, marker: { color: SERIES[0] } });
      layout = baseLayout({
        title: heading(`${feature}: share per category`),
        barmode: "group", hovermode: "x unified",
        xaxis: { type: "category", title: { text: feature } },
        yaxis: { title: { text: "share of values" }, tickformat: ".0%", rangemode: "tozero", gridcolor: "#eef0f3" },
      });
    } else if (f.lo.length) {
      const centers = f.lo.map((lo, i) => (lo + f.hi[i]) / 2);
      const widths = f.lo.map((lo, i) => f.hi[i] - lo);
      const density = (shares) => shares.map((s, i) => (widths[i] > 0 ? s / widths[i] : null));
      const bar = (name, shares, color, opacity) => ({
        type: "bar", name, x: centers, y: density(shares), width: widths, customdata: shares.map((s, i) => [f.labels[i], s]),
        hovertemplate: `${name}: bin %{customdata[0]}: %{customdata[1]:.1%}<extra></extra>`, marker: { color, opacity },
      });
      if (f.reference) traces.push(bar("reference", f.reference, "#9aa5b1", 0.75));
      if (f.current) traces.push(bar("current window", f.current, SERIES[0], 0.6));
      const measured = f.measured === "value" ? feature : `${feature} (${f.measured})`;
      layout = baseLayout({
        title: heading(`${measured}: current window vs reference, by reference bin`),
        barmode: "overlay", hovermode: "closest",
        xaxis: { type: "linear", title: { text: measured } },
        yaxis: { title: { text: "density (share per unit)" }, rangemode: "tozero", gridcolor: "#eef0f3" },
      });
    }
    plot("chart-distribution", traces.length ? traces : null, layout,
      "no reference bins for this feature yet: upload reference data to compare");
  }

  function chartBlock(container, id, label) {
    const el = h("div", { class: "chart", id, "data-testid": id, role: "img", "aria-label": label });
    const empty = h("p", { class: "empty", id: id + "-empty", hidden: "" });
    container.append(h("div", {}, el, empty));
    return id;
  }

  function renderPredictions(d, x, none) {
    const root = $("predictions");
    for (const el of root.querySelectorAll(".chart")) if (el.data) Plotly.purge(el);
    root.replaceChildren();
    $("predictions-empty").hidden = !(none || d.predictions.length === 0);
    $("predictions-empty").textContent = d.predictions.length === 0 ? "the spec declares no outputs" : EMPTY;
    if (none) return;
    const ids = d.predictions.map((out) => chartBlock(root, "chart-prediction-" + out.name, "Distribution of output " + out.name + " over time"));
    d.predictions.forEach((out, k) => {
      const id = ids[k];
      let traces;
      let layout;
      if (out.kind === "categorical") {
        const seen = x.map((_, j) => out.classes.some((cls) => out.shares[cls][j] !== null));
        const keep = (ys) => ys.filter((_, j) => seen[j]);
        traces = out.classes.map((cls, i) => ({
          type: "scatter", mode: "lines", stackgroup: "one", name: cls, x: keep(x), y: keep(out.shares[cls]),
          line: { color: SERIES[i % SERIES.length], width: 1 }, hovertemplate: "%{y:.1%}",
        }));
        layout = { title: `${out.name}: share per class`, y: "share of predictions", fmt: ".0%" };
      } else {
        traces = [];
        if (hasValue(out.p10)) {
          traces.push({ type: "scatter", mode: "lines", name: "10th percentile", x, y: out.p10, line: { width: 0 }, showlegend: false, connectgaps: false });
          traces.push({ type: "scatter", mode: "lines", name: "10th–90th percentile", x, y: out.p90, fill: "tonexty",
            fillcolor: "rgba(11,92,173,0.15)", line: { width: 0 }, connectgaps: false });
          traces.push({ type: "scatter", mode: "lines", name: "median", x, y: out.p50, line: { color: SERIES[1], dash: "dot" }, connectgaps: false });
        }
        traces.push({ type: "scatter", mode: "lines+markers", name: "mean", x, y: out.mean, line: { color: SERIES[0] }, marker: { size: 4 }, connectgaps: false });
        layout = { title: `${out.name}: mean and spread`, y: out.name, fmt: "" };
      }
      plot(id, traces, baseLayout({
        title: heading(layout.title),
        yaxis: { title: { text: layout.y }, tickformat: layout.fmt, gridcolor: "#eef0f3" },
      }));
    });
  }

  const SHARE_METRICS = new Set(["accuracy", "f1", "precision", "recall", "roc_auc"]);

  function renderLabels(d, x) {
    const lb = d.labels;
    const traces = Object.entries(lb.metrics).filter(([, ys]) => hasValue(ys)).map(([name, y], i) => ({
      type: "scatter", mode: "lines+markers", name, x, y, connectgaps: false, line: { color: SERIES[i % SERIES.length], width: 2 }, marker: { size: 4 },
    }));
    Object.entries(lb.estimated).filter(([, ys]) => hasValue(ys)).forEach(([name, y], i) => traces.push({
      type: "scatter", mode: "lines", name: "estimated " + name, x, y, connectgaps: false,
      line: { color: SERIES[i % SERIES.length], dash: "dash", width: 1.5 }, visible: "legendonly",
    }));
    const hasCoverage = hasValue(lb.coverage);
    if (hasCoverage) {
      traces.push({
        type: "bar", name: "label coverage", x, y: lb.coverage, yaxis: "y2", marker: { color: "rgba(27,158,119,0.25)" },
        customdata: lb.labelled, hovertemplate: "coverage %{y:.1%} (%{customdata} labelled)<extra></extra>",
      });
    }
    const shares = Object.keys(lb.metrics).every((m) => SHARE_METRICS.has(m));
    const layout = baseLayout({
      title: heading(`Label metrics per ${d.window} window`),
      yaxis: { title: { text: "metric value" }, gridcolor: "#eef0f3", range: shares ? [0, 1.02] : undefined },
      yaxis2: {
        title: { text: "label coverage" }, overlaying: "y", side: "right", range: [0, 1.02], tickformat: ".0%",
        tickmode: "array", tickvals: [0, 0.25, 0.5, 0.75, 1], showgrid: false,
      },
      margin: { l: 64, r: 64, t: 64, b: 48 },
    });
    plot("chart-labels", hasCoverage ? traces : null, layout,
      d.traffic.total === 0 ? EMPTY : "no labels joined in this range yet (POST /v1/models/<name>/labels)");
  }

  const QUALITY_TITLES = {
    missing: "Missing values", type_errors: "Type errors", out_of_range: "Out of range", unseen_categories: "Unseen categories",
  };

  function renderQuality(d, x) {
    const root = $("quality");
    for (const el of root.querySelectorAll(".chart")) if (el.data) Plotly.purge(el);
    root.replaceChildren();
    const kinds = Object.keys(d.quality);
    $("quality-empty").hidden = kinds.length > 0;
    $("quality-empty").textContent = EMPTY;
    const ids = kinds.map((kind) => chartBlock(root, "chart-quality-" + kind, QUALITY_TITLES[kind] + " per feature over time"));
    kinds.forEach((kind, k) => {
      const q = d.quality[kind];
      const id = ids[k];
      const shown = q.features.map((f, i) => [f, q.values[i]]).filter(([, ys]) => ys.some((v) => v));
      const traces = shown.map(([f, y], i) => ({
        type: "scatter", mode: "lines+markers", name: f, x, y, connectgaps: false,
        line: { color: SERIES[i % SERIES.length] }, marker: { size: 4 },
      }));
      const judged = q.values.some((ys) => hasValue(ys));
      plot(id, traces, baseLayout({
        title: heading(`${QUALITY_TITLES[kind] || kind} (share of values)`),
        yaxis: { title: { text: "share of values" }, tickformat: ".1%", rangemode: "tozero", gridcolor: "#eef0f3" },
      }), judged ? `${QUALITY_TITLES[kind] || kind}: none in this range (0% for every feature)` : EMPTY);
    });
  }

  function renderAlerts(d) {
    const alerts = d.alerts;
    const until = d.until;
    const traces = [];
    for (const a of alerts) {
      const start = new Date(a.started_at).getTime();
      const end = new Date(a.resolved_at || until).getTime();
      traces.push({
        type: "bar", orientation: "h", y: [a.rule], base: [time(a.started_at)], x: [Math.max(end - start, 1000)],
        name: `${a.rule} (${a.status})`, showlegend: false,
        marker: { color: a.status === "firing" ? COLORS.alert : "#8c959f" },
        hovertemplate: `${a.rule}: ${a.severity}, ${a.status}<br>from ${local(a.started_at)}<br>to ${a.resolved_at ? local(a.resolved_at) : "now"}<extra></extra>`,
      });
    }
    const attempts = alerts.flatMap((a) => a.attempts.map((t) => ({ ...t, rule: a.rule })));
    if (attempts.length) {
      traces.push({
        type: "scatter", mode: "markers", name: "action attempts", y: attempts.map((t) => t.rule), x: attempts.map((t) => time(t.at)),
        marker: { size: 11, symbol: attempts.map((t) => (t.ok ? "circle" : "x")), color: attempts.map((t) => (t.ok ? COLORS.ok : COLORS.alert)),
          line: { color: "#fff", width: 1 } },
        text: attempts.map((t) => `${t.action} (${t.type}) on ${t.event}: ${t.ok ? "ok" : "failed"} — ${t.detail}`),
        hovertemplate: "%{text}<extra></extra>",
      });
    }
    plot("chart-alerts", alerts.length ? traces : null, baseLayout({
      title: heading("Alert timeline (bars: firing → resolved; dots: action attempts)"),
      hovermode: "closest", barmode: "overlay", showlegend: false,
      yaxis: { type: "category", automargin: true, title: { text: "" } },
      xaxis: { type: "date", title: { text: "time (UTC)" }, range: span },
    }), "no alerts in this range");
    const table = $("alerts-table");
    if (!alerts.length) {
      table.replaceChildren();
      return;
    }
    const rows = alerts.map((a) => h("tr", { "data-testid": "alert-row", "data-rule": a.rule },
      h("td", {}, h("strong", {}, a.rule), h("br"), h("span", { class: "muted" }, a.severity)),
      h("td", {}, badge(a.status === "firing" ? "alert" : "resolved", "alert-status"), a.silenced ? " silenced" : ""),
      h("td", {}, local(a.started_at), h("br"), h("span", { class: "muted" }, a.resolved_at ? "resolved " + local(a.resolved_at) : "still firing")),
      h("td", {}, a.summary || ""),
      h("td", {}, a.attempts.length ? h("ul", { class: "attempts" }, a.attempts.map((t) =>
        h("li", { "data-testid": "attempt", "data-ok": String(t.ok) },
          h("span", { class: t.ok ? "outcome-ok" : "outcome-failed" }, t.ok ? "✓ ok" : "✗ failed"),
          ` ${t.action} (${t.type}), ${t.event}, try ${t.attempt}, ${local(t.at)}: ${t.detail}`))) : h("span", { class: "muted" }, "no actions"))));
    table.replaceChildren(h("table", {},
      h("caption", { class: "muted" }, "Alerts in this range, newest first, with every action attempt and its outcome"),
      h("thead", {}, h("tr", {}, ["Rule", "Status", "When", "Summary", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
  }

  function setupModelPickers(load) {
    $("version").addEventListener("change", () => { writeState({ version: $("version").value }); load(); });
    $("window").addEventListener("change", () => { writeState({ window: $("window").value }); load(); });
    $("feature").addEventListener("change", () => {
      writeState({ feature: $("feature").value });
      if (last) renderDistribution(last, $("feature").value);
    });
  }

  // -- start ----------------------------------------------------------------------------------------
  adoptToken();
  if (page === "overview") {
    const load = () => guarded(loadOverview);
    setupPickers(load);
    load();
  } else {
    const load = () => guarded(loadModel);
    setupPickers(load);
    setupModelPickers(load);
    load();
  }
})();

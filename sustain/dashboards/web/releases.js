// sustain web UI: the releases page (/releases). Plain JS, no charts.
// For each model: who serves (champion, candidate, previous champion), a promote and a rollback button,
// every release with its stages, the history of alias moves, and "which version was champion at ...".
// Reading needs a read token, promoting and rolling back an admin token; either is given once as ?token=
// and kept in this tab's sessionStorage (the same key as the other pages).
"use strict";

(() => {
  const { TOKEN_KEY, HttpError, api, h, $ } = window.sustainUi;
  const ICON = { passed: "✓", failed: "✗", skipped: "–", running: "…" };
  const STATE_CLASS = { promoted: "ok", deployed: "warn", rejected: "alert", failed: "alert", rolled_back: "none" };
  let loads = 0;

  function adoptToken() {
    const q = new URLSearchParams(location.search);
    if (q.has("token")) {
      const token = q.get("token").trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      q.delete("token");
      const search = q.toString();
      history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
    }
  }

  const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC") : "–");

  function show(id, node) {
    const box = $(id);
    box.replaceChildren(node);
    box.hidden = false;
  }

  function stateBadge(state) {
    return h("span", { class: "badge " + (STATE_CLASS[state] || "none"), "data-testid": "state", "data-state": state }, state.replace("_", " "));
  }

  function stages(release) {
    return h("ol", { class: "stages", "data-testid": "stages" }, release.stages.map((s) => h("li", {
      class: "stage " + s.outcome, title: s.reason, "data-stage": s.stage, "data-outcome": s.outcome,
    }, `${ICON[s.outcome] || "?"} ${s.stage}` + (s.seconds === null ? "" : ` ${s.seconds.toFixed(1)} s`))));
  }

  function checks(release) {
    const rows = [];
    for (const stage of release.stages) {
      for (const c of stage.checks) {
        const mark = c.skipped ? "–" : c.ok ? "✓" : "✗";
        rows.push(h("li", { class: c.ok ? "" : "failed-check" }, `${mark} ${stage.stage} · ${c.name}: ${c.reason}`,
          !c.ok && c.fix ? h("span", { class: "muted" }, ` (fix: ${c.fix})`) : null));
      }
    }
    return h("details", {}, h("summary", {}, `${rows.length} checks`), h("ul", { class: "checks" }, rows));
  }

  async function act(path, what) {
    try {
      const release = await api(path, "POST");
      show("notice", h("div", {}, h("strong", {}, what + ": "), `${release.model} version ${release.version} — ${release.reason}`));
    } catch (err) {
      const hint = err.status === 401 || err.status === 403
        ? " Promoting and rolling back need an admin token: open this page with ?token=<admin token>."
        : "";
      show("message", h("div", {}, h("strong", {}, what + " failed. "), err.message + hint));
    }
    await load();
  }

  function roles(model, aliases) {
    const rows = [["champion", "Champion"], ["challenger", "Candidate"], ["previous_champion", "Previous champion"]];
    const buttons = [];
    if (aliases.challenger) {
      buttons.push(h("button", { type: "button", class: "primary", "data-testid": "promote" }, `Promote version ${aliases.challenger}`));
      buttons[buttons.length - 1].addEventListener("click", () => act(`/v1/releases/${encodeURIComponent(model)}/promote`, "Promote"));
    }
    if (aliases.previous_champion && aliases.champion) {
      const button = h("button", { type: "button", "data-testid": "rollback" }, `Roll back to version ${aliases.previous_champion}`);
      button.addEventListener("click", () => act(`/v1/releases/${encodeURIComponent(model)}/rollback`, "Rollback"));
      buttons.push(button);
    }
    return h("div", { class: "roles" },
      h("dl", { class: "role-list" }, rows.flatMap(([key, label]) => [
        h("dt", {}, label),
        h("dd", { "data-testid": "role-" + key }, aliases[key] ? "version " + aliases[key] : "–"),
      ])),
      h("div", { class: "actions" }, buttons));
  }

  function releaseTable(releases) {
    const head = h("tr", {}, ["Version", "State", "Roles", "Stages", "Trigger", "Updated", "Why"].map((t) => h("th", { scope: "col" }, t)));
    const body = releases.map((r) => h("tr", { "data-testid": "release-row", "data-version": r.version },
      h("td", {}, r.version),
      h("td", {}, stateBadge(r.state)),
      h("td", {}, r.roles.join(", ") || "–"),
      h("td", {}, stages(r)),
      h("td", {}, r.trigger),
      h("td", {}, when(r.updated_at)),
      h("td", {}, h("div", {}, r.reason), checks(r))));
    return h("table", { class: "releases" }, h("thead", {}, head), h("tbody", {}, body));
  }

  function historyTable(moves) {
    const head = h("tr", {}, ["When", "Alias", "Version", "Why"].map((t) => h("th", { scope: "col" }, t)));
    const rows = moves.slice().reverse().map((m) => h("tr", { "data-testid": "alias-move" },
      h("td", {}, when(m.at)), h("td", {}, "@" + m.alias), h("td", {}, m.version === null ? "removed" : m.version), h("td", {}, m.reason)));
    return h("details", { open: "" }, h("summary", {}, `History: ${moves.length} alias moves`),
      h("table", { class: "history" }, h("thead", {}, head), h("tbody", {}, rows)));
  }

  function championAt(model) {
    const input = h("input", { type: "datetime-local", step: "1", "data-testid": "champion-at-input", "aria-label": "time (UTC)" });
    const answer = h("span", { class: "muted", "data-testid": "champion-at-answer", "aria-live": "polite" });
    const form = h("form", { class: "champion-at" }, h("label", {}, "Which version was champion at ", input, " UTC? "),
      h("button", { type: "submit" }, "Ask"), " ", answer);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!input.value) return;
      const at = input.value + (input.value.length === 16 ? ":00" : "") + "Z";
      try {
        const reply = await api(`/v1/releases/${encodeURIComponent(model)}/champion?at=${encodeURIComponent(at)}`);
        answer.textContent = reply.version === null ? "none: no version was champion then" : `version ${reply.version} (since ${when(reply.since)})`;
        answer.dataset.version = reply.version === null ? "" : reply.version;
      } catch (err) {
        answer.textContent = err.message;
      }
    });
    return form;
  }

  async function load() {
    document.body.dataset.state = "loading";
    try {
      const { releases } = await api("/v1/releases?limit=1000");
      const byModel = new Map();
      for (const r of releases) {
        if (!byModel.has(r.model)) byModel.set(r.model, []);
        byModel.get(r.model).push(r);
      }
      const sections = [];
      for (const [model, list] of [...byModel.entries()].sort()) {
        const history = await api(`/v1/releases/${encodeURIComponent(model)}/history`);
        list.sort((a, b) => Number(b.version) - Number(a.version) || b.version.localeCompare(a.version));
        sections.push(h("section", { class: "panel release-model", "data-testid": "release-model", "data-model": model },
          h("h2", {}, h("a", { href: "/models/" + encodeURIComponent(model) }, model)),
          roles(model, history.aliases),
          releaseTable(list),
          historyTable(history.alias_moves),
          championAt(model)));
      }
      $("models").replaceChildren(...sections);
      $("models-empty").hidden = sections.length > 0;
      $("message").hidden = true;
      $("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
      loads += 1;
      document.body.dataset.loads = String(loads);
      document.body.dataset.state = "ready";
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 0;
      const text = status === 401 || status === 403
        ? "This page needs a token: open it with ?token=<read token> (an admin token to promote or roll back). "
        : "Could not load the releases. ";
      show("message", h("div", {}, h("strong", {}, text), err.message || String(err)));
      document.body.dataset.state = status === 401 || status === 403 ? "auth" : "error";
    }
  }

  adoptToken();
  load();
})();

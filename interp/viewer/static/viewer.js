// interp view: the page of a run directory (served by `interp view RUN`, or embedded by `--export`).
// Every stored string (prompts, outputs, constraints, names) reaches the page as a text node (textContent);
// nothing built from run data is ever parsed as HTML.
"use strict";
(function () {
  const EMBED = document.getElementById("interp-data");
  const DATA = EMBED ? JSON.parse(EMBED.textContent) : null;
  const PAGE = 50;
  const COLS = {
    constrained: ["item_id", "condition", "ctype", "k", "outcome", "lenient", "met", "error_type", "finish_reason", "snippet"],
    baseline: ["item_id", "seed", "outcome", "lenient", "finish_reason", "thinking", "snippet"],
    ablations: ["item_id", "ab_stage", "arm", "role", "outcome", "flipped", "met", "snippet"],
  };
  const FILTERS = {
    constrained: ["task", "domain", "kind", "ctype", "hardness", "k", "outcome", "lenient", "met", "error_type", "finish_reason", "thinking"],
    baseline: ["task", "domain", "outcome", "lenient", "finish_reason", "thinking", "seed"],
    ablations: ["ab_stage", "arm", "role", "outcome", "flipped", "met"],
  };
  const LABEL = { kind: "condition kind", ctype: "constraint type", k: "K", met: "constraint met", error_type: "failure type",
                  ab_stage: "ablation stage", finish_reason: "finish", outcome: "outcome", lenient: "lenient" };
  let META = null;

  // ---- DOM helpers: strings always become text nodes -------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const $ = (s) => document.querySelector(s);
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    return String(v);
  }
  function badge(text, cls) { return el("span", { class: "badge " + (cls || ""), text: text }); }

  // ---- data: the server's API, or the same answers from the embedded JSON -----------------------
  function matches(row, filters) {  // the rule of interp/viewer/index.py: equality on strings + output search
    for (const [f, v] of Object.entries(filters)) {
      if (f === "stage" || f === "q" || f === "offset" || f === "limit") continue;
      if (row[f] !== v) return false;
    }
    const q = (filters.q || "").toLowerCase();
    if (q) {
      const rec = DATA.records[row.key];
      if (!((rec && rec.output_text) || "").toLowerCase().includes(q)) return false;
    }
    return true;
  }
  const local = {
    meta: () => DATA.meta,
    tables: () => { if (DATA.tables_error) throw new Error(DATA.tables_error); return DATA.tables; },
    records: (p) => {
      const stage = p.stage || "constrained";
      const rows = (DATA.rows[stage] || []).filter((r) => matches(r, p));
      const off = +(p.offset || 0), lim = +(p.limit || PAGE);
      return { stage, total: rows.length, offset: off, limit: lim, rows: rows.slice(off, off + lim) };
    },
    item: (p) => {
      const out = { item_id: p.item_id, constrained: [], baseline: [], ablations: [], candidates: (DATA.candidates || {})[p.item_id] || [] };
      for (const [s, rows] of Object.entries(DATA.rows)) for (const r of rows) if (r.item_id === p.item_id) out[s].push(r);
      return out;
    },
    record: (p) => { const r = DATA.records[p.key]; if (!r) throw new Error("no record " + p.key); return r; },
    cas: (p) => {
      const c = DATA.cas[p.key];
      if (!c) throw new Error("the CAS of this generation is not in this export (it holds " + DATA.meta.n_cas + " of " +
                              DATA.meta.n_with_cas + "; export with a larger cas_limit, or use `interp view RUN`)");
      if (p.span && p.span !== c.span) throw new Error("this export holds only the span '" + c.span + "'");
      return c;
    },
  };
  async function api(name, params) {
    params = params || {};
    if (DATA) return local[name](params);
    const r = await fetch("api/" + name + "?" + new URLSearchParams(params));
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  // ---- routing: #/view?params --------------------------------------------------------------------
  function parseHash() {
    const h = location.hash.replace(/^#\/?/, "");
    const [view, qs] = h.split("?");
    return { view: view || "report", params: Object.fromEntries(new URLSearchParams(qs || "")) };
  }
  function go(view, params) { location.hash = "#/" + view + (params && Object.keys(params).length ? "?" + new URLSearchParams(params) : ""); }
  let last = { item: null, tokens: null };

  async function route() {
    const { view, params } = parseHash();
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === view);
    const main = $("#main");
    main.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    try {
      if (view === "records") await showRecords(main, params);
      else if (view === "item") await showItem(main, params.item_id ? params : (last.item || {}));
      else if (view === "tokens") await showTokens(main, params.key ? params : (last.tokens || {}));
      else await showReport(main);
    } catch (e) {
      main.replaceChildren(el("p", { class: "err", text: "Error: " + e.message }));
    }
    document.body.dataset.view = view;
    document.body.dataset.ready = String(Date.now());
  }

  // ---- report: tables, each counting cell a link to its records ----------------------------------
  async function showReport(main) {
    main.replaceChildren(el("p", { class: "muted", text: "Computing the report tables…" }));
    const T = await api("tables");
    const grid = el("div", { class: "tables-grid" });
    for (const t of T.tables) {
      const head = el("tr", {}, t.columns.map((c) => el("th", { text: c })));
      const body = t.rows.map((row, i) => el("tr", {}, row.map((v, j) => {
        const link = (t.links[i] || {})[t.columns[j]];
        if (!link) return el("td", { text: fmt(v) });
        return el("td", {}, el("a", { class: "cell", href: "#/records?" + new URLSearchParams(link.filters),
          title: "the " + (link.counts || "records") + " behind this cell",
          dataset: { table: t.name, row: String(i), col: t.columns[j] }, text: fmt(v) }));
      })));
      grid.append(el("section", { class: "tbl", dataset: { table: t.name } }, el("h3", { text: t.title }),
        el("table", { class: "t" }, el("thead", {}, head), el("tbody", {}, body))));
    }
    const kids = [el("h2", { text: "Report" }), el("p", { class: "muted small", text: T.estimator })];
    if (T.mismatches.length) kids.push(el("div", { class: "problems" },
      el("b", { text: "Links dropped (the records behind these cells did not add up to them):" }),
      el("ul", {}, T.mismatches.map((m) => el("li", { text: m })))));
    const sk = Object.entries(T.skipped || {});
    if (sk.length) kids.push(el("div", { class: "problems", text: sk.map(([f, l]) => f + ": " + l.length +
      " line(s) without the report's fields left out of the tables").join("; ") }));
    main.replaceChildren(...kids, grid);
  }

  // ---- records: filters, search, paged list ----------------------------------------------------
  async function showRecords(main, params) {
    const stage = params.stage || ("constrained" in META.counts ? "constrained" : Object.keys(META.counts)[0]);
    const facets = (META.facets[stage] || {});
    const offset = +(params.offset || 0);
    const res = await api("records", Object.assign({}, params, { stage, offset, limit: PAGE }));
    const set = (k, v) => { const p = Object.assign({}, params, { stage }); delete p.offset; if (v === "") delete p[k]; else p[k] = v; go("records", p); };
    const stageSel = el("select", { id: "f-stage", onchange: (e) => go("records", { stage: e.target.value }) },
      Object.keys(META.counts).map((s) => el("option", { value: s, selected: s === stage ? "" : null, text: s + " (" + META.counts[s] + ")" })));
    const bar = el("div", { class: "filters" }, el("label", {}, "stage", stageSel));
    for (const f of FILTERS[stage] || []) {
      const vals = facets[f];
      if (!vals || vals.length < 1) continue;
      const sel = el("select", { id: "f-" + f, onchange: (e) => set(f, e.target.value) },
        el("option", { value: "", text: "all" }),
        vals.map((v) => el("option", { value: v, selected: params[f] === v ? "" : null, text: v === "" ? "(empty)" : v })));
      bar.append(el("label", {}, LABEL[f] || f, sel));
    }
    if (params.item_id) bar.append(el("label", {}, "item", el("button", { onclick: () => set("item_id", ""), text: params.item_id + " ×" })));
    if (params.condition) bar.append(el("label", {}, "condition", el("button", { onclick: () => set("condition", ""), text: params.condition + " ×" })));
    if (params.real) bar.append(el("label", {}, "controls", el("button", { onclick: () => set("real", ""), text: (params.real === "yes" ? "excluded" : "only") + " ×" })));
    if (params.checked) bar.append(el("label", {}, "constraint checked", el("button", { onclick: () => set("checked", ""), text: params.checked + " ×" })));
    const q = el("input", { type: "search", id: "f-q", placeholder: "search in outputs", value: params.q || "" });
    q.addEventListener("keydown", (e) => { if (e.key === "Enter") set("q", q.value); });
    bar.append(el("label", {}, "search", q), el("button", { id: "f-clear", onclick: () => go("records", { stage }), text: "clear filters" }));
    const cols = COLS[stage];
    const table = el("table", { class: "t rec", id: "records" },
      el("thead", {}, el("tr", {}, cols.map((c) => el("th", { text: LABEL[c] || c })))),
      el("tbody", {}, res.rows.map((r) => el("tr", { dataset: { key: r.key, item: r.item_id },
          onclick: () => go("item", { item_id: r.item_id, focus: r.key }) },
        cols.map((c) => {
          const v = r[c];
          if (c === "outcome") return el("td", {}, badge(v, v === "success" ? "ok" : "bad"));
          return el("td", { class: c === "snippet" ? "snip" : null, text: v === "" ? "–" : v });
        })))));
    const pager = el("div", { class: "pager" },
      el("button", { id: "prev", disabled: offset <= 0 ? "" : null, onclick: () => go("records", Object.assign({}, params, { stage, offset: Math.max(0, offset - PAGE) })), text: "‹ prev" }),
      el("span", { id: "count", dataset: { total: String(res.total) },
        text: res.total ? (offset + 1) + "–" + Math.min(offset + PAGE, res.total) + " of " + res.total + " records" : "no records match" }),
      el("button", { id: "next", disabled: offset + PAGE >= res.total ? "" : null, onclick: () => go("records", Object.assign({}, params, { stage, offset: offset + PAGE })), text: "next ›" }));
    main.replaceChildren(el("h2", { text: "Records" }), bar, pager, table);
  }

  // ---- item: baseline and every condition side by side, ablation arms beside their original -----
  function promptNode(rec) {
    const text = rec.prompt_text || "";
    const spans = (rec.prompt_spans || []).filter((s) => s.end > s.start).sort((a, b) => a.start - b.start);
    const box = el("div", { class: "text prompt" });
    let pos = 0;
    for (const s of spans) {
      if (s.start < pos) continue;  // nested/overlapping parts: the outer one is shown
      box.append(text.slice(pos, s.start));
      const cls = s.name.startsWith("constraint") ? "part-constraint" : s.name === "task" ? "part-task" : "part-other";
      box.append(el("mark", { class: cls, title: s.name, dataset: { part: s.name } }, text.slice(s.start, s.end)));
      pos = s.end;
    }
    box.append(text.slice(pos));
    return box;
  }
  function outcomeBadges(r) {
    const b = [badge(r.success ? "success" : "failure", r.success ? "ok" : "bad")];
    if ("lenient_success" in r) b.push(badge("lenient " + (r.lenient_success ? "✓" : "✗")));
    if (r.constraint_met !== undefined && r.constraint_met !== null) b.push(badge("constraint " + (r.constraint_met ? "met" : "not met"), r.constraint_met ? "ok" : "bad"));
    if (r.error_type) b.push(badge("failure type: " + r.error_type));
    if (r.finish_reason) b.push(badge("finish: " + r.finish_reason));
    if (r.score_value !== undefined) b.push(badge("score " + fmt(r.score_value)));
    return b;
  }
  function outputNodes(r) {
    const out = [];
    if (r.thinking_state && r.thinking_state !== "none") {
      out.push(el("div", { class: "lbl", text: "thinking (" + r.thinking_state + ", " + (r.thinking_tokens || 0) + " tokens)" }),
        el("div", { class: "text thinking" }, r.thinking_text || ""),
        el("div", { class: "lbl", text: "answer" }), el("div", { class: "text output answer" }, r.answer_text || ""));
    } else out.push(el("div", { class: "lbl", text: "output" }), el("div", { class: "text output" }, r.output_text || ""));
    return out;
  }
  function card(r, focus) {
    const title = r._stage === "baseline" ? "baseline (seed " + r.seed + ")" : (r.condition || r.arm || r.key);
    const kids = [el("h4", { text: title }), el("div", {}, outcomeBadges(r))];
    if (r._stage === "constrained") kids.push(el("div", { class: "small muted", text: "kind " + r.condition_kind + " · type " + r.ctype + " · K=" + r.k + (r.hardness ? " · " + r.hardness : "") }));
    for (const c of r.constraints || []) kids.push(el("div", { class: "text constraint" }, (c.type ? "[" + c.type + "] " : "") + (c.text || "")));
    if (r.prompt_text) kids.push(el("details", {}, el("summary", { text: "prompt (" + r.n_prompt_tokens + " tokens; parts " + (r.prompt_spans_how || "") + ")" }), promptNode(r)));
    kids.push(...outputNodes(r));
    if (r.prediction !== undefined && r.prediction !== null) kids.push(el("div", { class: "small muted", text: "prediction: " + r.prediction + (r.score_detail && r.score_detail.gold !== undefined ? " · gold: " + r.score_detail.gold : "") }));
    if (r.cas_file) kids.push(el("button", { class: "tokbtn", onclick: () => go("tokens", { key: r.key }), text: "token CAS ›" }));
    if (r._schema_problem) kids.push(el("div", { class: "err small", text: "schema: " + r._schema_problem }));
    kids.push(el("div", { class: "small muted", text: "key " + r.key }));
    return el("div", { class: "card" + (focus ? " focus" : ""), dataset: { key: r.key, stage: r._stage } }, kids);
  }
  function armNode(a) {
    const kids = [el("div", {}, el("b", { text: a.ab_stage + " · " + a.arm }), " ", badge(a.role)), el("div", {}, outcomeBadges(a))];
    if (a.flipped) kids.push(badge("flipped", "ok"));
    kids.push(el("div", { class: "text output" }, a.output_text || ""));
    if (a.cas_summary && Object.keys(a.cas_summary).length) kids.push(el("div", { class: "small muted", text: "mean CAS: " +
      Object.entries(a.cas_summary).map(([k, v]) => k + " " + v.toFixed(4)).join(", ") }));
    return el("div", { class: "arm", dataset: { key: a.key, arm: a.arm } }, kids);
  }
  async function showItem(main, params) {
    if (!params.item_id) { main.replaceChildren(el("p", { class: "muted", text: "Pick a record in Records (or a table cell) to see its item." })); return; }
    last.item = params;
    const it = await api("item", { item_id: params.item_id });
    const recs = async (rows) => Promise.all(rows.map((r) => api("record", { key: r.key })));
    const base = await recs(it.baseline), con = await recs(it.constrained);
    const kids = [el("h2", {}, "Item ", el("code", { text: it.item_id })),
      el("p", { class: "muted small", text: it.baseline.length + " baseline, " + it.constrained.length + " constrained, " + it.ablations.length + " ablation record(s)" })];
    if (base[0] && base[0].item_input !== undefined) kids.push(el("div", { class: "lbl", text: "item input" }), el("div", { class: "text" }, typeof base[0].item_input === "string" ? base[0].item_input : JSON.stringify(base[0].item_input, null, 1)));
    kids.push(el("h3", { text: "Baseline and conditions" }));
    const cards = el("div", { class: "cards", id: "cards" }, base.concat(con).map((r) => card(r, r.key === params.focus)));
    kids.push(cards);
    if (it.candidates && it.candidates.length) {
      const acc = it.candidates.filter((c) => c.accepted).length;
      kids.push(el("details", { id: "candidates" }, el("summary", { text: "constraint candidates: " + acc + " accepted of " + it.candidates.length + " proposed" }),
        el("table", { class: "t rec" }, el("thead", {}, el("tr", {}, ["type", "accepted", "constraint", "reason"].map((c) => el("th", { text: c })))),
          el("tbody", {}, it.candidates.map((c) => el("tr", {}, el("td", { text: c.type || "" }),
            el("td", {}, badge(c.accepted ? "accepted" : "rejected", c.accepted ? "ok" : "bad")),
            el("td", { class: "snip", text: (c.constraint && c.constraint.text) || "" }), el("td", { class: "snip", text: c.reason || "" })))))));
    }
    const ablated = [...base, ...con].filter((r) => r.ablations && r.ablations.length);
    if (ablated.length) {
      kids.push(el("h3", { text: "Ablations: intervened generations beside the original" }));
      for (const r of ablated) {
        const arms = await Promise.all(r.ablations.map((a) => api("record", { key: a.key })));
        for (const a of arms) a.ab_stage = a.stage;
        kids.push(el("div", { class: "cards ablation", dataset: { base: r.key } },
          el("div", { class: "card" }, el("h4", { text: "original: " + (r.condition || "baseline") }), el("div", {}, outcomeBadges(r)), ...outputNodes(r)),
          el("div", { class: "card" }, el("h4", { text: arms.length + " intervened generation(s)" }), el("div", { class: "arms" }, arms.map(armNode)))));
      }
    }
    main.replaceChildren(...kids);
    const f = params.focus && document.querySelector('.card[data-key="' + CSS.escape(params.focus) + '"]');
    if (f) f.scrollIntoView({ block: "center" });
  }

  let plotlyLoad = null;
  function plotly() {  // plotly.js is loaded on the first token view (the list and tables do not need it)
    if (window.Plotly) return Promise.resolve(true);
    if (!plotlyLoad) plotlyLoad = new Promise((resolve) => {
      const s = el("script", { src: "static/plotly.min.js" });
      s.onload = () => resolve(true);
      s.onerror = () => resolve(false);
      document.head.append(s);
    });
    return plotlyLoad;
  }

  // ---- token CAS: colour per generated token, layer/head picker, step curve, layer x head map ------
  function decode(b64) {
    const bin = atob(b64), buf = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
    return new Float32Array(buf.buffer);
  }
  function curve(x, T, L, H, layer, head) {  // value per step: the chosen layer/head, or the mean over them
    const ls = layer === "mean" ? [...Array(L).keys()] : [+layer], hs = head === "mean" ? [...Array(H).keys()] : [+head];
    const out = new Array(T);
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (const l of ls) for (const h of hs) s += x[(t * L + l) * H + h];
      out[t] = s / (ls.length * hs.length);
    }
    return out;
  }
  async function showTokens(main, params) {
    if (!params.key) { main.replaceChildren(el("p", { class: "muted", text: "Open a generation's token CAS from its card in Item." })); return; }
    last.tokens = params;
    const [rec, c] = await Promise.all([api("record", { key: params.key }), api("cas", params.span ? { key: params.key, span: params.span } : { key: params.key })]);
    const [T, L, H] = c.shape, x = decode(c.values);
    const layer = params.layer || "mean", head = params.head || "mean";
    const v = curve(x, T, L, H, layer, head);
    const vmax = Math.max(1e-12, ...v);
    const pick = (name, n, cur) => el("select", { id: "pick-" + name, onchange: (e) => go("tokens", Object.assign({}, params, { [name]: e.target.value })) },
      el("option", { value: "mean", text: "mean over " + name + "s" }), [...Array(n).keys()].map((i) => el("option", { value: String(i), selected: cur === String(i) ? "" : null, text: name + " " + i })));
    const spanSel = el("select", { id: "pick-span", onchange: (e) => go("tokens", Object.assign({}, params, { span: e.target.value })) },
      c.spans.map((s) => el("option", { value: s, selected: s === c.span ? "" : null, text: s + " (" + c.span_len[s] + " tokens)" })));
    const bar = el("div", { class: "filters" }, el("label", {}, "span attended to", spanSel), el("label", {}, "layer", pick("layer", L, layer)),
      el("label", {}, "head", pick("head", H, head)),
      el("button", { onclick: () => go("item", { item_id: rec.item_id, focus: rec.key }), text: "‹ item" }));
    const ph = c.phase_ranges;
    const toks = el("div", { class: "tokens", id: "tokens" });
    for (let t = 0; t < T; t++) {
      if (ph && ph.answer && t === ph.answer[0] && t > 0) toks.append(el("div", { class: "lbl", text: "— answer phase —" }));
      const a = Math.max(0, v[t] / vmax);
      toks.append(el("span", { class: "tok", title: "step " + t + ": CAS " + v[t].toPrecision(6),
        style: "background: rgba(214,69,34," + a.toFixed(3) + ")", dataset: { step: String(t), value: String(v[t]) } }, c.tokens[t] === undefined ? "" : c.tokens[t]));
    }
    const notes = [];
    if (c.tokens_problem) notes.push(c.tokens_problem);
    if (T !== c.n_output_tokens) notes.push("CAS has " + T + " steps, the output " + c.n_output_tokens + " tokens");
    const sub = (layer === "mean" ? "mean over layers" : "layer " + layer) + ", " + (head === "mean" ? "mean over heads" : "head " + head);
    main.replaceChildren(...[el("h2", {}, "Token CAS · ", el("code", { text: rec.key })),
      el("div", {}, outcomeBadges(rec), badge(rec._stage), rec.condition ? badge(rec.condition) : null),
      bar, el("div", { class: "legend" }, "0", el("span", { class: "bar" }), vmax.toPrecision(4), " · attention mass on '", c.span, "' · ", sub),
      notes.length ? el("div", { class: "problems", text: notes.join("; ") }) : null,
      el("div", { class: "tokview" }, toks, el("div", { class: "plots" }, el("div", { class: "plot", id: "curve" }), el("div", { class: "plot", id: "heat" })))].filter(Boolean));
    if (!(await plotly())) return;
    // plotly renders a few tags and entities in hover text: escape them so a token shows as the text it is
    const hover = [...Array(T).keys()].map((t) => String(c.tokens[t] || "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"));
    Plotly.newPlot("curve", [{ x: [...Array(T).keys()], y: v, text: hover, mode: "lines+markers", line: { color: "#d64522" },
      hovertemplate: "step %{x}<br>%{text}<br>CAS %{y:.5f}<extra></extra>" }],
      { title: { text: "CAS per step (" + sub + ")", font: { size: 13 } }, margin: { l: 50, r: 10, t: 36, b: 36 },
        xaxis: { title: { text: "generated token" } }, yaxis: { title: { text: "CAS" } } }, { displaylogo: false, responsive: true });
    const z = [...Array(L).keys()].map((l) => [...Array(H).keys()].map((h) => { let s = 0; for (let t = 0; t < T; t++) s += x[(t * L + l) * H + h]; return s / T; }));
    Plotly.newPlot("heat", [{ z, type: "heatmap", colorscale: "Reds", hovertemplate: "layer %{y}, head %{x}<br>mean CAS %{z:.5f}<extra></extra>" }],
      { title: { text: "mean over steps, by layer and head (click to pick)", font: { size: 13 } }, margin: { l: 50, r: 10, t: 36, b: 36 },
        xaxis: { title: { text: "head" }, dtick: 1 }, yaxis: { title: { text: "layer" } } }, { displaylogo: false, responsive: true });
    $("#heat").on("plotly_click", (ev) => { const p = ev.points[0]; go("tokens", Object.assign({}, params, { layer: String(p.y), head: String(p.x) })); });
  }

  // ---- start ------------------------------------------------------------------------------------
  async function start() {
    try { META = await api("meta"); } catch (e) { $("#main").replaceChildren(el("p", { class: "err", text: "Error: " + e.message })); return; }
    const cfg = META.config || {};
    $("#runinfo").textContent = META.run + " · model " + (cfg.model || "?") + " · task " + (cfg.task || "?") + " · " +
      Object.entries(META.counts).map(([s, n]) => n + " " + s).join(", ") + (META.mode === "export" ? " · offline export" : "");
    document.title = "interp view · " + META.run;
    if (META.problems.length) $("#problems").replaceChildren(...META.problems.map((p) => el("div", { text: p })));
    window.addEventListener("hashchange", route);
    route();
  }
  start();
})();

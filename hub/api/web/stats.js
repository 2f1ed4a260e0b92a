// The statistics page: counts of a region and its children as of a date,
// from GET /v1/stats/urban-rural, as a table and a stacked bar chart.
//
// Under an access policy the API wants a bearer token and a purpose the
// token's identity may act for: the page asks for both and keeps them in
// sessionStorage (this tab only, gone when it closes), never in the URL.
"use strict";

const $ = (id) => document.getElementById(id);
const levels = [2, 4, 6, 9, 12];
const nf = new Intl.NumberFormat("zh-CN");
// The statistics bureau's purpose in ops/policy.example.yaml; a hub
// without a policy takes any.
const defaultPurpose = "official population statistics";

const credentials = ["token", "purpose"];
for (const id of credentials) $(id).value = sessionStorage.getItem("pophub." + id) || "";
function keepCredentials() {
  for (const id of credentials) sessionStorage.setItem("pophub." + id, $(id).value.trim());
}

async function fetchCounts(region, asOf, children) {
  const q = new URLSearchParams({ region });
  if (asOf) q.set("as_of", asOf);
  if (children) q.set("children", "true");
  const headers = { "X-Purpose": $("purpose").value.trim() || defaultPurpose, Accept: "application/json" };
  const token = $("token").value.trim();
  if (token) headers.Authorization = "Bearer " + token;
  const resp = await fetch("/v1/stats/urban-rural?" + q, { headers });
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.detail || resp.statusText);
  return body;
}

// A count is a number, or a marker where the hub hides it from the caller:
// "<k" for a small count, "suppressed" for one hidden to protect another.
function count(v) {
  return typeof v === "number" ? nf.format(v) : v;
}
// barValue is a count for the chart: a hidden one draws nothing.
function barValue(v) {
  return typeof v === "number" ? v : 0;
}

function share(c) {
  if (typeof c.urban !== "number" || typeof c.total !== "number") return "–";
  return c.total > 0 ? (100 * c.urban / c.total).toFixed(1) + "%" : "–";
}

function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text;
  tr.appendChild(td);
}

function row(c, isChild) {
  const tr = document.createElement("tr");
  if (isChild) {
    tr.className = "child";
    tr.dataset.region = c.region;
    tr.title = "drill down";
    tr.addEventListener("click", () => show(c.region, $("asof").value, true));
  }
  [c.region, c.name, count(c.urban), count(c.rural), count(c.total), share(c)].forEach((t) => cell(tr, t));
  return tr;
}

async function crumbs(region, asOf) {
  const nav = $("crumbs");
  nav.textContent = "";
  const prefixes = levels.filter((n) => n < region.length).map((n) => region.slice(0, n));
  const names = await Promise.all(prefixes.map((p) => fetchCounts(p, asOf, false).then((b) => b.name).catch(() => p)));
  prefixes.forEach((p, i) => {
    const a = document.createElement("a");
    a.href = "?region=" + p + (asOf ? "&as_of=" + asOf : "");
    a.textContent = names[i] || p;
    a.addEventListener("click", (e) => { e.preventDefault(); show(p, $("asof").value, true); });
    nav.appendChild(a);
    const sep = document.createElement("span");
    sep.className = "sep";
    sep.textContent = "›";
    nav.appendChild(sep);
  });
  const here = document.createElement("strong");
  here.id = "here";
  here.textContent = region;
  nav.appendChild(here);
}

function chart(children) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.textContent = "";
  if (children.length === 0) { svg.hidden = true; return; }
  const barW = 28, gap = 14, top = 20, plotH = 220, left = 50;
  const width = Math.max(360, left + children.length * (barW + gap) + gap);
  const height = top + plotH + 90;
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const max = Math.max(1, ...children.map((c) => barValue(c.urban) + barValue(c.rural)));
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  el("line", { x1: left, y1: top + plotH, x2: width, y2: top + plotH, class: "axis" });
  el("text", { x: 4, y: top + 8, class: "label" }, nf.format(max));
  children.forEach((c, i) => {
    const x = left + gap + i * (barW + gap);
    const hu = plotH * barValue(c.urban) / max, hr = plotH * barValue(c.rural) / max;
    el("rect", { x, y: top + plotH - hu - hr, width: barW, height: hr, class: "rural" }).appendChild(
      Object.assign(document.createElementNS(ns, "title"), { textContent: `${c.name} 乡村 rural ${count(c.rural)}` }));
    el("rect", { x, y: top + plotH - hu, width: barW, height: hu, class: "urban" }).appendChild(
      Object.assign(document.createElementNS(ns, "title"), { textContent: `${c.name} 城镇 urban ${count(c.urban)}` }));
    el("text", { x: x + barW / 2, y: top + plotH + 12, class: "label", transform: `rotate(60 ${x + barW / 2} ${top + plotH + 12})` }, c.name || c.region);
  });
  el("rect", { x: left, y: 2, width: 10, height: 10, class: "urban" });
  el("text", { x: left + 14, y: 11, class: "label" }, "城镇 urban");
  el("rect", { x: left + 90, y: 2, width: 10, height: 10, class: "rural" });
  el("text", { x: left + 104, y: 11, class: "label" }, "乡村 rural");
  svg.hidden = false;
}

async function show(region, asOf, push) {
  $("region").value = region;
  const status = $("status");
  status.className = "";
  status.textContent = "加载中 Loading…";
  if (push) {
    const q = new URLSearchParams({ region });
    if (asOf) q.set("as_of", asOf);
    history.pushState({ region, asOf }, "", "?" + q);
  }
  try {
    const body = await fetchCounts(region, asOf, true);
    $("asof").value = body.as_of;
    $("title").textContent = `${body.name} (${body.region}) · ${body.as_of}`;
    $("totals").textContent = `城镇 urban ${count(body.urban)} · 乡村 rural ${count(body.rural)} · 合计 total ${count(body.total)} · 城镇化率 ${share(body)}`;
    $("summary").hidden = false;
    const tbody = $("table").querySelector("tbody");
    tbody.textContent = "";
    const children = body.children || [];
    // A child with the region's own code would drill down to this same
    // page again (hubs once answered 441900, Dongguan's one county, as
    // the city 4419 and so as its own child): it is no link.
    children.forEach((c) => tbody.appendChild(row(c, c.region.length < 12 && c.region !== body.region)));
    let tfoot = $("table").querySelector("tfoot");
    if (!tfoot) { tfoot = document.createElement("tfoot"); $("table").appendChild(tfoot); }
    tfoot.textContent = "";
    tfoot.appendChild(row(body, false));
    $("table").hidden = false;
    chart(children);
    status.textContent = children.length ? "" : "没有下级区划 No child regions";
    await crumbs(region, body.as_of);
  } catch (err) {
    status.className = "error";
    status.textContent = String(err.message || err);
    $("summary").hidden = true;
    $("table").hidden = true;
    $("chart").hidden = true;
  }
}

$("query").addEventListener("submit", (e) => {
  e.preventDefault();
  keepCredentials();
  show($("region").value.trim(), $("asof").value, true);
});
window.addEventListener("popstate", (e) => {
  if (e.state) show(e.state.region, e.state.asOf, false);
});
const params = new URLSearchParams(location.search);
if (params.get("region")) {
  show(params.get("region"), params.get("as_of") || "", false);
} else {
  $("status").textContent = "输入区划代码 Enter a division code (2, 4, 6, 9 or 12 digits)";
}

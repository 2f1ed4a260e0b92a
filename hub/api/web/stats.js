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
// requestTimeout is how long the page waits for the hub's answer before
// it says so, rather than "loading" for ever.
const requestTimeout = 30000;

// en is text in English inside the Chinese page, marked so that a Chinese
// screen-reader voice reads it as English (WCAG 3.1.2).
function en(text) {
  const s = document.createElement("span");
  s.lang = "en";
  s.textContent = text;
  return s;
}

// todayInChina is today where the hub counts (UTC+8, no daylight saving
// time): the hub refuses a later as_of, so the date field offers none.
function todayInChina() {
  return new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);
}
// hubsLatest is the latest date the hub answered for. The hub is the
// authority on its today: around China's midnight, or with a browser
// clock a little slow, its answer may be dated a day after the browser's
// idea of today, and the date field, which shows the answer's date, must
// not then refuse the form for a max below its own value.
let hubsLatest = "";
function setDateMax() {
  const today = todayInChina();
  $("asof").max = hubsLatest > today ? hubsLatest : today;
}
setDateMax();
$("asof").addEventListener("focus", setDateMax);

// A code typed with a Chinese input method in full-width mode (２３０１)
// is the same code: it is turned into ASCII digits before the field's
// pattern refuses it.
function normalizeRegion() {
  const v = $("region").value;
  const n = v.replace(/[\uff10-\uff19]/g, (d) => String.fromCharCode(d.charCodeAt(0) - 0xfee0)).replace(/\s+/g, "");
  if (n !== v) $("region").value = n;
}
// checkRegion says, of a code of the wrong shape, what shape is wanted:
// the browser's own message says only to match "the requested format"
// (WCAG 3.3.3). It runs whenever the field's value changes, typed or set
// by the page.
function checkRegion() {
  const r = $("region");
  r.setCustomValidity("");
  if (r.validity.patternMismatch) r.setCustomValidity(r.title + " (2, 4, 6, 9 or 12 digits)");
}
$("region").addEventListener("input", (e) => {
  if (!e.isComposing) normalizeRegion();
  checkRegion();
});
$("region").addEventListener("compositionend", () => { normalizeRegion(); checkRegion(); });
// The statistics bureau's purpose in ops/policy.example.yaml; a hub
// without a policy takes any.
const defaultPurpose = "official population statistics";

const credentials = ["token", "purpose"];
for (const id of credentials) $(id).value = sessionStorage.getItem("pophub." + id) || "";
function keepCredentials() {
  for (const id of credentials) sessionStorage.setItem("pophub." + id, $(id).value.trim());
}

// purposeHeader is the X-Purpose value for a typed purpose. Browsers
// refuse header values outside ISO-8859-1 (fetch throws), so a purpose in
// Chinese goes as an RFC 8187 ext-value, UTF-8'' and the text
// percent-encoded, which the hub decodes before its policy check.
function purposeHeader(p) {
  return /[^\x20-\x7e]/.test(p) ? "UTF-8''" + encodeURIComponent(p) : p;
}

// leads are the Chinese sentences a refusal's message begins with; the
// hub's own detail (English) follows them.
const leads = {
  400: "查询条件有误，请检查区划代码和统计日期。",
  asof: "统计日期有误，请检查「统计日期」。",
  purpose: "用途有误，请检查「用途」。",
  401: "需要有效的令牌，请在「令牌」中输入。",
  403: "该令牌无权用于此用途，请检查「用途」。",
  404: "区划代码不存在。",
  429: "请求过于频繁，请稍后再试。",
  500: "服务器内部错误，请稍后再试；如仍出错，请联系管理员。",
  route: "该令牌无权查询统计数据，请检查「令牌」。",
  unavailable: "服务暂时不可用，请稍后再试。",
  other: "请求未能完成。",
  network: "无法连接到服务器，请检查网络后重试。",
  timeout: "服务器长时间没有回答，请稍后再试。",
  unreadable: "无法读取服务器的回答。",
};

// purposeRefused tells, of a 403, a purpose its identity may not act for
// (problem type forbidden-purpose) from a token whose identity may not
// use the statistics at all (forbidden). The purpose is the field to
// correct for the first, the token for the second. The type, not the
// detail, decides: the detail quotes the policy's purposes, free text.
function purposeRefused(problem) {
  return problem.type === "urn:pophub:problem:forbidden-purpose";
}

// RequestError is a refusal or failure of the hub (or of a proxy in front
// of it), or of the connection (status 0): a Chinese lead, the detail
// (English, as the hub or browser says it), and the field to correct.
class RequestError extends Error {
  constructor(status, lead, detail, field) {
    super([lead, detail].filter(Boolean).join(" "));
    this.status = status;
    this.lead = lead;
    this.detail = detail;
    this.field = field;
  }
}

// badField is the field a 400 of the hub's is about. The hub's problem
// names no parameter, so the detail tells: the access policy's refusals
// of a purpose name the X-Purpose header; the date's begin with as_of
// ("as_of … is in the future") or as-of ("as-of date … is not
// YYYY-MM-DD"); the rest are the region's.
function badField(detail) {
  if (/\bX-Purpose\b/.test(detail)) return "purpose";
  if (/^as[-_]of\b/.test(detail)) return "asof";
  return "region";
}

// refusal is the RequestError of an answer with status and the hub's
// problem.
function refusal(status, problem) {
  const detail = problem.detail;
  switch (status) {
    case 400: {
      const field = badField(detail);
      return new RequestError(status, leads[field] || leads[400], detail, field);
    }
    case 401: return new RequestError(status, leads[401], detail, "token");
    case 403: return purposeRefused(problem) ? new RequestError(status, leads[403], detail, "purpose")
      : new RequestError(status, leads.route, detail, "token");
    case 404: return new RequestError(status, leads[404], detail, "region");
  }
  return failure(status, detail);
}

// failure is the RequestError of an answer with status that names no
// field to correct: a hub's problem of another status, or an answer that
// is none of the hub's (a proxy's HTML error page when the hub is down,
// restarting or rate limited by the proxy). It still says what happened
// and what to do: try again later (5xx), or slow down (429).
function failure(status, detail) {
  let lead = leads.other;
  if (status === 429 || status === 500) lead = leads[status];
  else if (status > 500) lead = leads.unavailable;
  return new RequestError(status, lead, detail);
}

async function fetchCounts(region, asOf, children, signal) {
  const q = new URLSearchParams({ region });
  if (asOf) q.set("as_of", asOf);
  if (children) q.set("children", "true");
  const headers = { "X-Purpose": purposeHeader($("purpose").value.trim() || defaultPurpose), Accept: "application/json" };
  const token = $("token").value.trim();
  if (token) headers.Authorization = "Bearer " + token;
  let resp, body = null;
  try {
    resp = await fetch("/v1/stats/urban-rural?" + q, { headers, signal });
    // Only the hub answers in JSON (problem+json when it refuses); a
    // proxy in front of it may answer an HTML error page.
    if (/json/.test(resp.headers.get("Content-Type") || "")) body = await resp.json();
  } catch (err) {
    if (err.name === "AbortError" || err.name === "TimeoutError") throw err;
    // fetch rejects with a TypeError ("Failed to fetch") when the
    // connection fails; a body cut short or not JSON fails to parse.
    throw new RequestError(resp ? resp.status : 0, resp ? leads.unreadable : leads.network, String(err.message || err));
  }
  if (!resp.ok) {
    if (body && body.detail) throw refusal(resp.status, body);
    throw failure(resp.status, `HTTP ${resp.status} ${resp.statusText}`.trim());
  }
  if (!body) throw new RequestError(resp.status, leads.unreadable, `answer is not JSON: HTTP ${resp.status}`);
  return body;
}

// A count is a number, or a marker where the hub hides it from the caller:
// "<k" for a small count, "suppressed" for one hidden to protect another.
function count(v) {
  return typeof v === "number" ? nf.format(v) : v;
}
function shown(v) {
  return typeof v === "number";
}
// countNode is a count for the page's text: a marker in English
// ("suppressed") is marked as such.
function countNode(v) {
  return /[A-Za-z]/.test(count(v)) ? en(count(v)) : count(v);
}
// hides is true of a region with a count hidden, which #markers explains.
function hides(c) {
  return !shown(c.urban) || !shown(c.rural) || !shown(c.total);
}
// barValue is a count for the chart: a hidden one draws nothing.
function barValue(v) {
  return shown(v) ? v : 0;
}
// breakdownHidden is true of a region whose total is shown but whose
// urban/rural counts are not all: it is drawn as one neutral bar of its
// total, not as the (wrong) sum of what is shown.
function breakdownHidden(c) {
  return shown(c.total) && (!shown(c.urban) || !shown(c.rural));
}
// partlyHidden is true of a region whose total is hidden but whose urban
// or rural count is shown (the hub hides a rural count and the total where
// the rural count would otherwise follow from the parent's row). Its shown
// part is drawn with an open, dashed cap on top: more people live there,
// and the bar must not pass for a wholly urban (or rural) region.
function partlyHidden(c) {
  return !shown(c.total) && (shown(c.urban) || shown(c.rural));
}
function barHeight(c) {
  return breakdownHidden(c) ? c.total : barValue(c.urban) + barValue(c.rural);
}

function share(c) {
  if (!shown(c.urban) || !shown(c.total)) return "–";
  return c.total > 0 ? (100 * c.urban / c.total).toFixed(1) + "%" : "–";
}

function cell(tr, text, tag) {
  const td = document.createElement(tag || "td");
  td.textContent = text;
  if (/[A-Za-z]/.test(text)) td.lang = "en";
  tr.appendChild(td);
  return td;
}

// names caches region names by code and date from the answers seen, so
// that the breadcrumbs of a drill-down cost no request per ancestor (a
// rate limit of a few requests a second is soon spent otherwise).
const names = new Map();
function remember(c, asOf) {
  if (c.name) names.set(c.region + "@" + asOf, c.name);
}

// regionLink is a link to region's page, opened in this page (a click
// with a modifier key is left to the browser: a new tab or window). The
// focus, whose link the redraw removes, moves to the new page's heading.
function regionLink(region, text) {
  const a = document.createElement("a");
  const q = new URLSearchParams({ region });
  if ($("asof").value) q.set("as_of", $("asof").value);
  a.href = "?" + q;
  a.textContent = text;
  a.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    show(region, $("asof").value, true, true);
  });
  return a;
}

// row is a table row. A child's name is a link, so that keyboards and
// screen readers can drill down; a click elsewhere on the row does too.
function row(c, isChild) {
  const tr = document.createElement("tr");
  cell(tr, c.region);
  const name = cell(tr, "", "th");
  name.scope = "row";
  if (isChild) {
    tr.className = "child";
    tr.dataset.region = c.region;
    tr.title = "下钻 drill down";
    name.appendChild(regionLink(c.region, c.name || c.region));
    tr.addEventListener("click", (e) => {
      if (!e.target.closest("a")) show(c.region, $("asof").value, true, true);
    });
  } else {
    name.textContent = c.name;
  }
  [count(c.urban), count(c.rural), count(c.total), share(c)].forEach((t) => cell(tr, t));
  return tr;
}

// ancestors are the codes of region's ancestors, from the province down.
// A code padded with zeros is the division it pads (230100 is the city
// 2301), which is no ancestor of itself.
function ancestors(region) {
  return levels.filter((n) => n < region.length && !/^0*$/.test(region.slice(n))).map((n) => region.slice(0, n));
}

// crumbs draws the breadcrumbs of region (named name) once its ancestors'
// names are in, unless another region was asked for meanwhile (mine is
// show's request number).
async function crumbs(region, name, asOf, signal, mine) {
  const nav = $("crumbs");
  nav.textContent = "";
  const prefixes = ancestors(region);
  const found = await Promise.all(prefixes.map((p) => names.get(p + "@" + asOf) ||
    fetchCounts(p, asOf, false, signal).then((b) => (remember(b, asOf), b.name)).catch(() => p)));
  if (mine !== current) return;
  prefixes.forEach((p, i) => {
    nav.appendChild(regionLink(p, found[i] || p));
    const sep = document.createElement("span");
    sep.className = "sep";
    sep.textContent = "›";
    nav.appendChild(sep);
  });
  // The region shown, by name and code; #here is the code alone.
  const last = document.createElement("strong");
  last.setAttribute("aria-current", "page");
  const here = document.createElement("span");
  here.id = "here";
  here.textContent = region;
  if (name) last.append(name + " (", here, ")");
  else last.append(here);
  nav.appendChild(last);
}

// chart draws the children as stacked bars of their urban and rural
// counts. Where the hub hides counts, no bar passes for a complete one: a
// shown total with its breakdown hidden is one grey bar, a hidden total
// with a class shown is that class's part under an open, dashed cap, and a
// child with every count hidden is a dash. The legend under the chart
// names the kinds drawn.
function chart(children) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.textContent = "";
  if (children.length === 0) { hide(svg, true); $("legend").hidden = true; return; }
  const barW = 28, gap = 14, top = 20, plotH = 220, left = 50, capH = 14;
  const width = Math.max(360, left + children.length * (barW + gap) + gap);
  const height = top + plotH + 90;
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const max = Math.max(1, ...children.map(barHeight));
  // A cap on the tallest bar stays inside the plot.
  const scale = (children.some(partlyHidden) ? plotH - capH : plotH) / max;
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  el("line", { x1: left, y1: top + plotH, x2: width, y2: top + plotH, class: "axis" });
  el("text", { x: 4, y: top + plotH - scale * max + 8, class: "label" }, nf.format(max));
  const title = (e, text) => e.appendChild(Object.assign(document.createElementNS(ns, "title"), { textContent: text }));
  const counts = (c) => `城镇 urban ${count(c.urban)}，乡村 rural ${count(c.rural)}，合计 total ${count(c.total)}`;
  children.forEach((c, i) => {
    const x = left + gap + i * (barW + gap);
    el("text", { x: x + barW / 2, y: top + plotH + 12, class: "label", transform: `rotate(60 ${x + barW / 2} ${top + plotH + 12})` }, c.name || c.region);
    if (breakdownHidden(c)) {
      const h = scale * c.total;
      title(el("rect", { x, y: top + plotH - h, width: barW, height: h, class: "breakdown-hidden" }),
        `${c.name} 合计 total ${count(c.total)}（城乡构成已隐藏 class breakdown hidden）`);
      return;
    }
    if (!shown(c.total) && !shown(c.urban) && !shown(c.rural)) {
      title(el("text", { x: x + barW / 2, y: top + plotH - 4, class: "label", "text-anchor": "middle" }, "—"),
        `${c.name} 已隐藏 hidden ${count(c.total)}`);
      return;
    }
    const hu = scale * barValue(c.urban), hr = scale * barValue(c.rural);
    if (shown(c.rural)) title(el("rect", { x, y: top + plotH - hu - hr, width: barW, height: hr, class: "rural" }), `${c.name} 乡村 rural ${count(c.rural)}`);
    if (shown(c.urban)) title(el("rect", { x, y: top + plotH - hu, width: barW, height: hu, class: "urban" }), `${c.name} 城镇 urban ${count(c.urban)}`);
    if (partlyHidden(c)) {
      title(el("rect", { x, y: top + plotH - hu - hr - capH, width: barW, height: capH, class: "breakdown-hidden part-hidden" }),
        `${c.name} 合计已隐藏，另有未显示的人数 total hidden, more people than shown（${counts(c)}）`);
    }
  });
  $("legend-breakdown").hidden = !children.some(breakdownHidden);
  $("legend-part").hidden = !children.some(partlyHidden);
  $("legend-all").hidden = !children.some((c) => !shown(c.total) && !shown(c.urban) && !shown(c.rural));
  hide(svg, false);
  $("legend").hidden = false;
}

// current numbers the calls of show; a call whose answer arrives after a
// later call began draws nothing (inflight aborts its requests), so the
// page always shows the region asked for last.
let current = 0;
let inflight = null;

// say puts a message in the live region (#status, role=status), which a
// screen reader announces: a Chinese lead and, marked as English, the
// rest.
function say(lead, rest, isError) {
  const status = $("status");
  status.className = isError ? "error" : "";
  status.replaceChildren(lead);
  if (rest) status.append(" ", en(rest));
}

// hide sets or removes the hidden attribute of e. An SVG element has no
// hidden property (only HTML elements do): setting it there would hide
// nothing, so the attribute itself is set.
function hide(e, hidden) {
  e.toggleAttribute("hidden", hidden);
}

// hideAnswer hides what an answer showed, once another region is asked
// for or the answer was refused.
function hideAnswer() {
  $("crumbs").textContent = "";
  for (const id of ["summary", "table", "chart", "legend", "markers"]) hide($(id), true);
}

// show asks for region as of asOf and shows the answer. push adds a
// history entry; moveFocus moves the keyboard focus to the answer's
// heading (after a drill-down or Back, whose link the redraw removes), or
// on a refusal to the field to correct.
async function show(region, asOf, push, moveFocus) {
  const mine = ++current;
  if (inflight) inflight.abort();
  const ctl = (inflight = new AbortController());
  const timer = setTimeout(() => ctl.abort(new DOMException(`no answer within ${requestTimeout / 1000} s`, "TimeoutError")), requestTimeout);
  $("region").value = region;
  checkRegion();
  // The date asked for, so that the field focused on its refusal shows
  // it (a date field takes only a valid day: another shows empty).
  $("asof").value = asOf;
  say("加载中", "Loading…");
  $("main").setAttribute("aria-busy", "true");
  if (push) {
    const q = new URLSearchParams({ region });
    if (asOf) q.set("as_of", asOf);
    history.pushState({ region, asOf }, "", "?" + q);
  }
  try {
    const body = await fetchCounts(region, asOf, true, ctl.signal);
    if (mine !== current) return;
    $("main").removeAttribute("aria-busy");
    const children = body.children || [];
    remember(body, body.as_of);
    children.forEach((c) => remember(c, body.as_of));
    if (body.as_of > hubsLatest) hubsLatest = body.as_of;
    setDateMax();
    $("asof").value = body.as_of;
    $("title").textContent = `${body.name} (${body.region}) · ${body.as_of}`;
    document.title = `${body.name} (${body.region}) · ${body.as_of} · 户籍人口城乡统计`;
    $("totals").replaceChildren("城镇 ", en("urban"), " ", countNode(body.urban), " · 乡村 ", en("rural"), " ", countNode(body.rural),
      " · 合计 ", en("total"), " ", countNode(body.total), " · 城镇化率 ", share(body));
    $("summary").hidden = false;
    const tbody = $("table").querySelector("tbody");
    tbody.textContent = "";
    // A child with the region's own code would drill down to this same
    // page again (hubs once answered 441900, Dongguan's one county, as
    // the city 4419 and so as its own child): it is no link.
    children.forEach((c) => tbody.appendChild(row(c, c.region.length < 12 && c.region !== body.region)));
    let tfoot = $("table").querySelector("tfoot");
    if (!tfoot) { tfoot = document.createElement("tfoot"); $("table").appendChild(tfoot); }
    tfoot.textContent = "";
    tfoot.appendChild(row(body, false));
    $("caption").replaceChildren(`${body.name} 的下级区划 · `, en(`Child regions of ${body.name} (${body.region})`));
    $("table").hidden = false;
    $("chart").setAttribute("aria-label", `${body.name} (${body.region}) ${body.as_of} 下级区划城镇、乡村人口 urban and rural population by child region`);
    chart(children);
    $("markers").hidden = ![body, ...children].some(hides);
    const what = `已显示 ${body.name} (${body.region}) · ${body.as_of} · `;
    if (children.length) say(what + `${children.length} 个下级区划`, `Showing ${children.length} child region${children.length === 1 ? "" : "s"}`);
    else say(what + "没有下级区划", "No child regions");
    if (moveFocus) $("title").focus();
    await crumbs(region, body.name, body.as_of, ctl.signal, mine);
  } catch (err) {
    if (mine !== current || err.name === "AbortError") return;
    $("main").removeAttribute("aria-busy");
    hideAnswer();
    document.title = "户籍人口城乡统计 · Registered population by urban/rural class";
    if (err.name === "TimeoutError") say(leads.timeout, String(err.message), true);
    else if (err instanceof RequestError) say(err.lead, err.detail, true);
    else say(leads.other, String(err.message || err), true);
    // The field to correct; after a drill-down, whose link is gone, the
    // region field, from which the clerk asks again.
    const field = err.field || (moveFocus || document.activeElement === document.body ? "region" : "");
    if (field) $(field).focus();
  } finally {
    clearTimeout(timer);
  }
}

// The browser checks the date against max before the form is submitted,
// after a click on its button (which Enter in a field also is): max is
// brought up to date first, as on focus.
$("query").querySelector("button").addEventListener("click", setDateMax);
$("query").addEventListener("submit", (e) => {
  e.preventDefault();
  keepCredentials();
  show($("region").value.trim(), $("asof").value, true, false);
});

// askForRegion clears the page back to asking for a region.
function askForRegion() {
  ++current;
  if (inflight) inflight.abort();
  $("region").value = "";
  checkRegion();
  $("main").removeAttribute("aria-busy");
  hideAnswer();
  say("输入区划代码", "Enter a division code (2, 4, 6, 9 or 12 digits)");
}

// showLocation shows what the address bar asks for: on load, and on Back
// or Forward to an entry without a state of this page.
function showLocation(moveFocus) {
  const params = new URLSearchParams(location.search);
  if (params.get("region")) show(params.get("region"), params.get("as_of") || "", false, moveFocus);
  else askForRegion();
}

window.addEventListener("popstate", (e) => {
  if (e.state && e.state.region) show(e.state.region, e.state.asOf, false, true);
  else showLocation(true);
});
// The entry the page was opened at gets a state too, so that Back to it
// shows its region again.
{
  const params = new URLSearchParams(location.search);
  history.replaceState({ region: params.get("region") || "", asOf: params.get("as_of") || "" }, "", location.href);
}
showLocation(false);

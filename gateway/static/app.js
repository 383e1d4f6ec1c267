// The page of `triage serve`: plain JavaScript against the same /v1 API any client uses.
"use strict";

const $ = (id) => document.getElementById(id);
const tokenKey = "triage-token";
$("token").value = localStorage.getItem(tokenKey) || "";

function headers() {
  const token = $("token").value.trim();
  localStorage.setItem(tokenKey, token);
  const h = { "Content-Type": "application/json" };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  let body = {};
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  return { status: response.status, body };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function bar(name, p, winner) {
  const fill = el("div", { class: "fill", style: `width:${(100 * p).toFixed(1)}%` });
  return el("li", winner ? { class: "winner", "data-class": name } : { "data-class": name },
    el("span", { class: "name", title: name }, name),
    el("div", { class: "track" }, fill),
    el("span", { class: "p" }, p.toFixed(3)));
}

function showResult(result) {
  $("error").hidden = true;
  $("answer").hidden = false;
  $("winner").textContent = result.label ?? "(abstained)";
  $("winner-p").textContent = `p = ${result.probability.toFixed(3)}`;
  const complete = $("complete");
  complete.textContent = result.complete ? "complete" : `partial: missing ${result.missing.join(", ")}`;
  complete.className = `pill ${result.complete ? "ok" : "bad"}`;
  $("message-id").textContent = `id ${result.id}`;
  const sorted = Object.entries(result.scores).sort((a, b) => b[1] - a[1]);
  $("bars").replaceChildren(...sorted.map(([k, p]) => bar(k, p, k === result.label)));
  $("versions").textContent = Object.entries(result.versions).map(([k, v]) => `${k}@${v}`).join("  ") || "-";
  const shadow = Object.entries(result.shadow_scores || {}).sort((a, b) => b[1] - a[1]);
  $("shadow-box").hidden = shadow.length === 0;
  $("shadow").replaceChildren(...shadow.map(([k, p]) => bar(k, p, false)));
}

function showError(text) {
  $("answer").hidden = true;
  $("error").hidden = false;
  $("error").textContent = text;
}

async function poll(location, deadline) {
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const { status, body } = await api(location);
    if (status !== 202) return { status, body };
  }
  return { status: 202, body: { error: "no result yet; the pipeline may be busy or stopped" } };
}

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value;
  $("send").disabled = true;
  try {
    let { status, body } = await api("/v1/classify?wait=5", { method: "POST", body: JSON.stringify({ text }) });
    if (status === 202) ({ status, body } = await poll(`/v1/results/${body.id}`, Date.now() + 30000));
    if (status === 200) showResult(body);
    else showError(`${status}: ${body.error || "no answer"}`);
  } catch (err) {
    showError(`cannot reach the gateway: ${err}`);
  } finally {
    $("send").disabled = false;
  }
});

async function refreshSide() {
  const health = $("health");
  try {
    const ready = await api("/readyz");
    health.textContent = ready.status === 200 ? "ready" : `not ready: ${ready.body.error}`;
    health.className = `pill ${ready.status === 200 ? "ok" : "bad"}`;
    // an expected class that does not vote yet: texts sent now would be decided without it
    const missing = Object.entries((ready.status === 200 ? {} : ready.body.missing) || {});
    $("missing").replaceChildren(...missing.map(([label, why]) => el("li", {},
      el("span", {}, label), el("span", { class: "muted" }, why))));
    $("missing-box").hidden = missing.length === 0;
    const { status, body } = await api("/v1/classifiers");
    if (status === 200) {
      const rows = body.classifiers.map((c) => el("tr", {},
        el("td", {}, c.label), el("td", {}, c.version), el("td", {}, c.role),
        el("td", {}, c.owner ? c.owner.team + (c.owner.contact ? ` (${c.owner.contact})` : "") : "–"),
        el("td", c.stale ? { class: "stale" } : {},
          c.heartbeat_age_s === null ? "never" : `${Math.round(c.heartbeat_age_s)}s ago${c.stale ? " STALE" : ""}`)));
      document.querySelector("#classifiers tbody").replaceChildren(...rows);
    }
    const recent = await api("/v1/results?limit=15");
    if (recent.status === 200) {
      $("recent").replaceChildren(...recent.body.results.map((r) => el("li", {},
        el("span", {}, r.label ?? "(abstained)"),
        el("span", { class: "muted" }, `${r.probability.toFixed(2)} · ${r.id.slice(0, 12)}`))));
    }
  } catch (err) {
    health.textContent = "gateway unreachable";
    health.className = "pill bad";
  }
}

refreshSide();
setInterval(refreshSide, 3000);

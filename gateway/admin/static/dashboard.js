// The mediator dashboard: fetches /admin/api/v1/dashboard with an admin API key
// and draws bar charts as inline SVG. No library, no build step, no network
// access beyond this node. The key may come from the form or the URL fragment
// (#key=...), which browsers never send to a server.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function shortName(id) {
  if (id === null || id === undefined) return "(unknown)";
  const parts = String(id).split("/");
  return parts.slice(-2).join("/");
}

function barChart(svg, rows, bad) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = svg.clientWidth || 400;
  const rowHeight = 22;
  svg.setAttribute("height", String(Math.max(40, rows.length * rowHeight + 8)));
  const max = Math.max(1, ...rows.map((r) => Math.abs(r.value)));
  const labelWidth = Math.min(180, width * 0.4);
  rows.forEach((row, i) => {
    const y = 4 + i * rowHeight;
    const w = Math.max(2, ((width - labelWidth - 60) * Math.abs(row.value)) / max);
    svg.appendChild(el("text", { x: 0, y: y + 14, class: "label" }, row.label));
    svg.appendChild(
      el("rect", { x: labelWidth, y, width: w, height: rowHeight - 6,
                   class: bad || row.value < 0 ? "bar bad" : "bar" }),
    );
    svg.appendChild(
      el("text", { x: labelWidth + w + 4, y: y + 14, class: "label" }, String(row.value)),
    );
  });
  svg.setAttribute("data-drawn", String(rows.length));
}

function sumBy(items, key) {
  const totals = new Map();
  for (const item of items) {
    const name = shortName(item[key]);
    totals.set(name, (totals.get(name) || 0) + item.count);
  }
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([label, value]) => ({ label, value }));
}

function draw(data) {
  barChart(document.getElementById("chart-clients"), sumBy(data.traffic, "client_id"));
  barChart(document.getElementById("chart-services"), sumBy(data.traffic, "service_id"));
  barChart(
    document.getElementById("chart-denials"),
    data.denials.map((d) => ({ label: d.reason || "(none)", value: d.count })),
    true,
  );
  barChart(
    document.getElementById("chart-latency"),
    Object.entries(data.latency_ms)
      .filter(([, v]) => v !== null)
      .map(([p, v]) => ({ label: p, value: Math.round(v * 10) / 10 })),
  );
  barChart(
    document.getElementById("chart-keys"),
    data.keys.map((k) => ({ label: `${k.kid} (${k.state})`, value: Math.round(k.days_to_expiry) })),
  );
  document.getElementById("log-size").textContent =
    `${data.log.records} records, ${(data.log.bytes / 1048576).toFixed(2)} MiB`;
  document.body.setAttribute("data-exchanges", String(data.exchanges));
}

async function load(key, hours) {
  const status = document.getElementById("status");
  status.textContent = "Loading...";
  const answer = await fetch(`/admin/api/v1/dashboard?hours=${encodeURIComponent(hours)}`, {
    headers: { authorization: `ApiKey ${key}` },
    cache: "no-store",
    credentials: "omit",
  });
  if (!answer.ok) {
    status.textContent = `The node answered ${answer.status}.`;
    return;
  }
  const data = await answer.json();
  draw(data);
  status.textContent = `${data.exchanges} exchanges in the last ${hours} hours.`;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  const keyInput = document.getElementById("key");
  const hoursInput = document.getElementById("hours");
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.get("key")) {
    keyInput.value = fragment.get("key");
    history.replaceState(null, "", window.location.pathname);
    load(keyInput.value, hoursInput.value);
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(keyInput.value, hoursInput.value);
  });
});

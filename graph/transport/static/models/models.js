// The model monitoring page: reads the GraphQL API only (Model.stats, drift, quality) and
// draws plain SVG charts. No library, no CDN: served from the package like GraphiQL.
"use strict";

const config = JSON.parse(document.getElementById("assay-models-config").textContent);
const SVG = "http://www.w3.org/2000/svg";
const HEALTH = `query ModelHealth($id: ID!, $from: DateTime!) { model(id: $id) {
  stats(window: {from: $from}) {
    predictions failures errorRate throughputPerSecond
    modelLatency { p50Ms p95Ms p99Ms } endToEndLatency { p50Ms p95Ms p99Ms }
    outputDistribution { label count share }
    series(bucketSeconds: 60) { at predictions failures modelLatency { p50Ms p95Ms p99Ms } }
  }
  drift(window: {from: $from}) {
    status driftShare
    features { feature psi ks status current { label share } reference { label share } }
    output { feature psi status current { label share } reference { label share } }
  }
  quality(window: {from: $from}) { labelled accuracy macroF1 mae rmse }
} }`;

function token() {
  return sessionStorage.getItem("assay-token") || config.bearer || "";
}

async function graphql(query, variables) {
  const headers = { "Content-Type": "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(config.endpoint, {
    method: "POST", headers, body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    throw new Error(`${(e.extensions || {}).code || "ERROR"}: ${e.message}`);
  }
  return body.data;
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, v);
  return node;
}

function fmt(value, digits = 2) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

// Lines over time: `series` of {name, colour, values}; x is the bucket index.
function lineChart(title, series, name) {
  const box = svg("svg", { viewBox: "0 0 400 160", preserveAspectRatio: "none", "data-chart": name });
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const top = Math.max(1e-9, ...all);
  const count = Math.max(1, ...series.map((s) => s.values.length));
  for (const s of series) {
    const points = s.values
      .map((v, i) => (v === null ? null : `${(i / Math.max(1, count - 1)) * 396 + 2},${158 - (v / top) * 150}`))
      .filter((p) => p !== null);
    if (points.length) {
      box.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: s.colour, "stroke-width": 1.5, "data-series": s.name }));
    }
    for (const point of points.length < 3 ? points : []) {  // a lone point shows as a dot
      const [x, y] = point.split(",");
      box.append(svg("circle", { cx: x, cy: y, r: 3, fill: s.colour }));
    }
  }
  const legend = series.map((s) => `${s.name} (max ${fmt(Math.max(0, ...s.values.filter((v) => v !== null)))})`).join(", ");
  return el("div", { class: "chart" }, el("h3", {}, `${title}: ${legend}`), box);
}

// Bars of shares: the current window beside the reference when given.
function barChart(title, current, reference, name) {
  const box = svg("svg", { viewBox: "0 0 400 160", preserveAspectRatio: "none", "data-chart": name });
  const width = 396 / Math.max(1, current.length);
  current.forEach((bin, i) => {
    const ref = reference && reference[i] ? reference[i].share : null;
    const h = bin.share * 150;
    box.append(svg("rect", { x: 2 + i * width, y: 158 - h, width: width * (ref === null ? 0.8 : 0.4), height: h, fill: "#3182ce", "data-bin": bin.label }));
    if (ref !== null) {
      box.append(svg("rect", { x: 2 + i * width + width * 0.4, y: 158 - ref * 150, width: width * 0.4, height: ref * 150, fill: "#a0aec0" }));
    }
    const label = svg("text", { x: 2 + i * width, y: 12, "font-size": 9 });
    label.textContent = bin.label;
    box.append(label);
  });
  return el("div", { class: "chart" }, el("h3", {}, title), box);
}

function badge(status) {
  return el("span", { class: `badge ${status}`, "data-drift": status }, status);
}

function renderModel(model, health) {
  const { stats, drift, quality } = health;
  const section = el("section", { class: "model", "data-model": model.name });
  section.append(el("h2", {}, `${model.name} ${model.version}`, badge(drift.status)));
  section.append(el("div", { class: "figures" },
    el("span", {}, "predictions ", el("b", {}, String(stats.predictions))),
    el("span", {}, "throughput ", el("b", {}, fmt(stats.throughputPerSecond, 3) + "/s")),
    el("span", {}, "error rate ", el("b", {}, fmt(stats.errorRate * 100, 1) + "%")),
    el("span", {}, "model p50/p95/p99 ", el("b", {}, `${fmt(stats.modelLatency.p50Ms)} / ${fmt(stats.modelLatency.p95Ms)} / ${fmt(stats.modelLatency.p99Ms)} ms`)),
    el("span", {}, "end to end p95 ", el("b", {}, fmt(stats.endToEndLatency.p95Ms) + " ms")),
    el("span", {}, "drift share ", el("b", {}, fmt(drift.driftShare * 100, 0) + "%")),
  ));
  const points = stats.series;
  const charts = el("div", { class: "charts" },
    lineChart("Model latency (ms)", [
      { name: "p50", colour: "#38a169", values: points.map((p) => p.modelLatency.p50Ms) },
      { name: "p95", colour: "#d69e2e", values: points.map((p) => p.modelLatency.p95Ms) },
      { name: "p99", colour: "#e53e3e", values: points.map((p) => p.modelLatency.p99Ms) },
    ], "latency"),
    lineChart("Throughput (per minute)", [
      { name: "predictions", colour: "#3182ce", values: points.map((p) => p.predictions) },
      { name: "failures", colour: "#e53e3e", values: points.map((p) => p.failures) },
    ], "throughput"),
    barChart(`Predictions (blue) and reference (grey): PSI ${fmt(drift.output.psi, 3)}`,
      drift.output.current, drift.output.reference, "predictions"),
  );
  for (const feature of drift.features) {
    const title = `${feature.feature}: PSI ${fmt(feature.psi, 3)}, KS ${fmt(feature.ks, 3)}, ${feature.status}`;
    charts.append(barChart(title, feature.current, feature.reference, `drift-${feature.feature}`));
  }
  section.append(charts);
  if (quality.labelled > 0) {
    const rows = [["labelled", quality.labelled], ["accuracy", fmt(quality.accuracy, 3)],
      ["macro F1", fmt(quality.macroF1, 3)], ["MAE", fmt(quality.mae, 3)], ["RMSE", fmt(quality.rmse, 3)]];
    const table = el("table", { "data-quality": "" });
    for (const [k, v] of rows) table.append(el("tr", {}, el("th", {}, k), el("td", {}, String(v))));
    section.append(el("h3", {}, "Quality (from feedback)"), table);
  }
  return section;
}

async function load() {
  const main = document.getElementById("models");
  main.replaceChildren(el("p", {}, "Loading…"));
  try {
    const from = new Date(Date.now() - 3600 * 1000).toISOString();
    const { models } = await graphql("query Models { models { id name version } }", {});
    const sections = [];
    for (const model of models) {
      const { model: health } = await graphql(HEALTH, { id: model.id, from });
      sections.push(renderModel(model, health));
    }
    main.replaceChildren(...sections);
    document.body.dataset.loaded = "true";
  } catch (error) {
    main.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
    document.body.dataset.loaded = "error";
  }
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("assay-token", document.getElementById("token").value.trim());
  load();
});
load();
